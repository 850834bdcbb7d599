//! SmoothGrad (Smilkov et al. 2017): the mean of the saliency map over noisy copies of the input,
//! x + N(0, (σ · rms(x))²), which averages away the gradient's sharp local fluctuations. The noise
//! comes from `params.seed` and is bit-identical natively and in wasm.

use crate::engine::attribution::methods::saliency::row_norms;
use crate::engine::attribution::methods::{
    AttributionMethod, MethodInfo, MethodParams, Param, Scores, ScoresFuture,
};
use crate::engine::attribution::problem::Problem;
use crate::engine::error::{EngineError, Result};
use crate::engine::runtime::progress;
use crate::engine::runtime::random::SplitMix64;
use candle_core::{DType, Tensor};

/// Beyond this the mean no longer changes visibly and the page would wait for nothing.
pub const MAX_SAMPLES: usize = 256;

pub struct SmoothGrad;

const INFO: MethodInfo = MethodInfo {
    name: "smoothgrad",
    label: "SmoothGrad",
    signed: false,
    target_independent: false,
    params: &[Param::Samples, Param::Sigma, Param::Seed],
};

impl AttributionMethod for SmoothGrad {
    fn info(&self) -> &'static MethodInfo {
        &INFO
    }

    fn gradient_inputs(&self, params: &MethodParams) -> usize {
        params.samples
    }

    fn work(&self, seq: usize, params: &MethodParams) -> u64 {
        progress::gradients(params.samples, seq)
    }

    fn attribute<'a>(
        &'a self,
        problem: &'a Problem<'_>,
        params: &'a MethodParams,
    ) -> ScoresFuture<'a> {
        Box::pin(smoothgrad(problem, params))
    }
}

async fn smoothgrad(problem: &Problem<'_>, params: &MethodParams) -> Result<Scores> {
    if !(1..=MAX_SAMPLES).contains(&params.samples) {
        return Err(EngineError::InvalidRequest(format!(
            "SmoothGrad needs between 1 and {MAX_SAMPLES} samples (got {}).",
            params.samples
        )));
    }
    if !(params.sigma >= 0.0 && params.sigma.is_finite()) {
        return Err(EngineError::InvalidRequest(format!(
            "SmoothGrad's noise level must be a finite number ≥ 0 (got {}).",
            params.sigma
        )));
    }
    let input = problem.input();
    let rms = input.to_dtype(DType::F64)?.sqr()?.mean_all()?.sqrt()?.to_scalar::<f64>()?;
    let deviation = params.sigma as f64 * rms;
    let mut normal = Normal::new(params.seed);
    let mut noisy_copy = || -> Result<Tensor> {
        let noise: Vec<f64> =
            (0..input.elem_count()).map(|_| deviation * normal.sample()).collect();
        let noise =
            Tensor::from_vec(noise, input.shape(), input.device())?.to_dtype(input.dtype())?;
        Ok((&input + noise)?)
    };

    let mut total = Tensor::zeros(problem.len(), DType::F64, input.device())?;
    let batch = problem.gradient_batch_rows();
    for start in (0..params.samples).step_by(batch) {
        let copies = (start..params.samples.min(start + batch))
            .map(|_| noisy_copy())
            .collect::<Result<Vec<_>>>()?;
        problem
            .gradients(&copies, |_, _, gradient| {
                total = (&total + row_norms(gradient)?.to_dtype(DType::F64)?)?;
                Ok(())
            })
            .await?;
    }
    let mean = (total / params.samples as f64)?;
    Ok(mean.to_dtype(DType::F32)?.to_vec1::<f32>()?.into())
}

/// Standard normal deviates from a seed: SplitMix64 bits and Marsaglia's polar method. Every step
/// is an IEEE-754 +, −, ×, ÷ or √, which round the same everywhere, so the sequence is the same
/// natively and in wasm; libm's `ln` (glibc here, Rust's libm port in wasm) may differ in the last
/// bit, hence [`ln`] below.
struct Normal {
    bits: SplitMix64,
    spare: Option<f64>,
}

impl Normal {
    fn new(seed: u64) -> Self {
        Self { bits: SplitMix64::new(seed), spare: None }
    }

    /// Uniform on [−1, 1), in steps of 2⁻⁵².
    fn symmetric_uniform(&mut self) -> f64 {
        (self.bits.next_u64() >> 11) as f64 / (1u64 << 52) as f64 - 1.0
    }

    fn sample(&mut self) -> f64 {
        if let Some(spare) = self.spare.take() {
            return spare;
        }
        loop {
            let (u, v) = (self.symmetric_uniform(), self.symmetric_uniform());
            let s = u * u + v * v;
            if s > 0.0 && s < 1.0 {
                let factor = (-2.0 * ln(s) / s).sqrt();
                self.spare = Some(v * factor);
                return u * factor;
            }
        }
    }
}

/// The natural logarithm of a positive normal f64, from +, −, ×, ÷ only.
fn ln(s: f64) -> f64 {
    // s = m · 2^e with m in [1, 2), folded into [√½, √2) so that |t| below stays under 0.172.
    let bits = s.to_bits();
    let mut exponent = ((bits >> 52) & 0x7ff) as i64 - 1023;
    let mut m = f64::from_bits((bits & ((1u64 << 52) - 1)) | (1023u64 << 52));
    if m > std::f64::consts::SQRT_2 {
        m /= 2.0;
        exponent += 1;
    }
    // ln m = 2 atanh t = 2 (t + t³/3 + t⁵/5 + …) with t = (m − 1)/(m + 1); the first omitted term,
    // t²⁵/25, is below 1e-20.
    let t = (m - 1.0) / (m + 1.0);
    let t2 = t * t;
    let series = (0..12).rev().fold(0.0, |sum, k| sum * t2 + 1.0 / (2 * k + 1) as f64);
    exponent as f64 * std::f64::consts::LN_2 + 2.0 * t * series
}

#[cfg(test)]
mod tests {
    use super::{ln, Normal};

    /// Our ln against the platform's: a few ulp apart at most (a wrong term or a wrong fold is off
    /// by far more than 4e-16 relative or 1e-17 absolute near s = 1).
    #[test]
    fn ln_matches_the_platform_logarithm() {
        let mut normal = Normal::new(1);
        for _ in 0..100_000 {
            let s = (normal.bits.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
            if s == 0.0 {
                continue;
            }
            let (ours, platform) = (ln(s), s.ln());
            assert!(
                (ours - platform).abs() <= 4e-16 * platform.abs() + 1e-17,
                "ln({s}): {ours} vs {platform}"
            );
        }
    }

    /// 200 000 deviates: the mean's standard error is 0.0022 and the variance's 0.0032, so a
    /// correct generator stays within 0.01 and 0.015; a wrong scale or a bias does not.
    #[test]
    fn normal_deviates_have_mean_zero_and_variance_one() {
        let mut normal = Normal::new(42);
        let samples: Vec<f64> = (0..200_000).map(|_| normal.sample()).collect();
        let mean = samples.iter().sum::<f64>() / samples.len() as f64;
        let variance =
            samples.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / samples.len() as f64;
        assert!(mean.abs() < 0.01, "mean {mean}");
        assert!((variance - 1.0).abs() < 0.015, "variance {variance}");
    }
}

//! RMSNorm over the last dimension as one op with an analytic backward, its rows split over the
//! pool's threads. candle's `rms_norm_slow` (its fast `rms_norm` has no backward) is six
//! elementwise ops and its backward about a dozen more, each a pass on the request's thread alone
//! while the others wait; two norms per layer made them about 5 % of the page's time.

use crate::engine::cpu::ops::custom_op::contiguous_range;
use crate::engine::error::Result;
use crate::engine::runtime::context::StopToken;
use crate::engine::runtime::parallel;
use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Shape, Tensor, WithDType};
use std::ops::Range;

/// RMSNorm over the last dimension: `x / sqrt(mean(x²) + eps) · weight`.
pub fn rms_norm(stop: &StopToken, x: &Tensor, weight: &Tensor, eps: f64) -> Result<Tensor> {
    Ok(x.contiguous()?.apply_op2(&weight.contiguous()?, RmsNorm { eps, stop: stop.clone() })?)
}

/// `x / sqrt(mean(x²) + eps) · weight` over the last dimension. No gradient reaches `weight`
/// (the engine differentiates with respect to its input only).
pub struct RmsNorm {
    pub eps: f64,
    pub stop: StopToken,
}

impl CustomOp2 for RmsNorm {
    fn name(&self) -> &'static str {
        "rms-norm"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        x_layout: &Layout,
        weight: &CpuStorage,
        weight_layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (x_range, weight_range) = operands(x_layout, weight_layout)?;
        let out = match (x, weight) {
            (CpuStorage::F32(x), CpuStorage::F32(w)) => {
                CpuStorage::F32(self.normalise(&x[x_range], &w[weight_range])?)
            }
            (CpuStorage::F64(x), CpuStorage::F64(w)) => {
                CpuStorage::F64(self.normalise(&x[x_range], &w[weight_range])?)
            }
            _ => {
                candle_core::bail!("rms-norm: only f32 and f64 operands of one type are supported")
            }
        };
        Ok((out, x_layout.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        weight: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let grad = x.apply_op3_no_bwd(
            weight,
            &grad_res.contiguous()?,
            &InputGradient { eps: self.eps, stop: self.stop.clone() },
        )?;
        Ok((Some(grad), None))
    }
}

impl RmsNorm {
    fn normalise<T: WithDType>(&self, x: &[T], weight: &[T]) -> candle_core::Result<Vec<T>> {
        let mut out = vec![T::zero(); x.len()];
        parallel::by_rows(&self.stop, [x], weight.len(), &mut out, |_, [row], out| {
            let r = inverse_rms(row, self.eps);
            for ((o, &v), &w) in out.iter_mut().zip(row).zip(weight) {
                *o = v * r * w;
            }
        })
        .map_err(candle_core::Error::wrap)?;
        Ok(out)
    }
}

/// The backward pass's op: `∂L/∂x` from `x`, `weight` and `∂L/∂y`. With `g = ∂L/∂y ⊙ weight`
/// and `r = 1 / sqrt(mean(x²) + eps)` of the row: `∂L/∂x = r·g − x · r³ · Σ(g ⊙ x) / width`.
struct InputGradient {
    eps: f64,
    stop: StopToken,
}

impl CustomOp3 for InputGradient {
    fn name(&self) -> &'static str {
        "rms-norm-input-gradient"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        x_layout: &Layout,
        weight: &CpuStorage,
        weight_layout: &Layout,
        dy: &CpuStorage,
        dy_layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (x_range, weight_range) = operands(x_layout, weight_layout)?;
        let (dy_range, _) = operands(dy_layout, weight_layout)?;
        let grad = match (x, weight, dy) {
            (CpuStorage::F32(x), CpuStorage::F32(w), CpuStorage::F32(dy)) => CpuStorage::F32(
                self.input_gradient(&x[x_range], &w[weight_range], &dy[dy_range])?,
            ),
            (CpuStorage::F64(x), CpuStorage::F64(w), CpuStorage::F64(dy)) => CpuStorage::F64(
                self.input_gradient(&x[x_range], &w[weight_range], &dy[dy_range])?,
            ),
            _ => {
                candle_core::bail!("rms-norm: only f32 and f64 operands of one type are supported")
            }
        };
        Ok((grad, x_layout.shape().clone()))
    }
}

impl InputGradient {
    fn input_gradient<T: WithDType>(
        &self,
        x: &[T],
        weight: &[T],
        dy: &[T],
    ) -> candle_core::Result<Vec<T>> {
        if dy.len() != x.len() {
            candle_core::bail!(
                "rms-norm: the gradient has {} values for {} inputs",
                dy.len(),
                x.len()
            );
        }
        let width = weight.len();
        let mut grad = vec![T::zero(); x.len()];
        parallel::by_rows(&self.stop, [x, dy], width, &mut grad, |_, [row, dy], grad| {
            let r = inverse_rms(row, self.eps);
            let dot = row
                .iter()
                .zip(dy)
                .zip(weight)
                .fold(T::zero(), |sum, ((&v, &d), &w)| sum + d * w * v);
            let correction = r * r * r * dot / T::from_f64(width as f64);
            for (((g, &v), &d), &w) in grad.iter_mut().zip(row).zip(dy).zip(weight) {
                *g = r * d * w - v * correction;
            }
        })
        .map_err(candle_core::Error::wrap)?;
        Ok(grad)
    }
}

/// `1 / sqrt(mean(row²) + eps)`.
fn inverse_rms<T: WithDType>(row: &[T], eps: f64) -> T {
    let squares = row.iter().fold(T::zero(), |sum, &v| sum + v * v);
    T::from_f64(1.0 / (squares.to_f64() / row.len() as f64 + eps).sqrt())
}

/// The contiguous ranges of `x` (`(..., width)`) and `weight` (`(width)`), checked to fit.
fn operands(x: &Layout, weight: &Layout) -> candle_core::Result<(Range<usize>, Range<usize>)> {
    let width = weight.shape().elem_count();
    if x.shape().dims().last() != Some(&width) || weight.shape().rank() != 1 {
        candle_core::bail!(
            "rms-norm: input {:?} does not end in the weight's {:?}",
            x.shape(),
            weight.shape()
        );
    }
    Ok((contiguous_range("rms-norm", x)?, contiguous_range("rms-norm", weight)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::runtime::random::SplitMix64;
    use candle_core::{DType, Device, Var};

    fn values(count: usize, seed: u64) -> Vec<f64> {
        let mut rng = SplitMix64::new(seed);
        (0..count).map(|_| (rng.next_u64() % 2001) as f64 / 1000.0 - 1.0).collect()
    }

    const ROWS: usize = 5;
    const WIDTH: usize = 7;
    const EPS: f64 = 1e-5;

    fn norm(x: &Tensor, weight: &Tensor) -> Tensor {
        x.apply_op2(weight, RmsNorm { eps: EPS, stop: Default::default() }).unwrap()
    }

    #[test]
    fn equals_candle_s_composed_norm() {
        let device = Device::Cpu;
        let x = Tensor::from_vec(values(ROWS * WIDTH, 1), (ROWS, WIDTH), &device)
            .unwrap()
            .to_dtype(DType::F32)
            .unwrap();
        let weight = Tensor::from_vec(values(WIDTH, 2), WIDTH, &device)
            .unwrap()
            .to_dtype(DType::F32)
            .unwrap();
        let want = candle_nn::ops::rms_norm_slow(&x, &weight, EPS as f32)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let got = norm(&x, &weight).flatten_all().unwrap().to_vec1::<f32>().unwrap();
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!((g - w).abs() <= 1e-6 * w.abs().max(1.0), "[{i}]: {g} vs {w}");
        }
    }

    /// The backward pass is the derivative of the forward one: central differences in f64.
    #[test]
    fn gradient_matches_finite_differences() {
        let device = Device::Cpu;
        let x = Var::from_vec(values(ROWS * WIDTH, 3), (ROWS, WIDTH), &device).unwrap();
        let weight = Tensor::from_vec(values(WIDTH, 4), WIDTH, &device).unwrap();
        let mix = Tensor::from_vec(values(ROWS * WIDTH, 5), (ROWS, WIDTH), &device).unwrap();
        let loss = |x: &Tensor| {
            norm(x, &weight).mul(&mix).unwrap().sum_all().unwrap().to_scalar::<f64>().unwrap()
        };
        let grads =
            norm(x.as_tensor(), &weight).mul(&mix).unwrap().sum_all().unwrap().backward().unwrap();
        let grad =
            grads.get(&x).expect("a gradient").flatten_all().unwrap().to_vec1::<f64>().unwrap();
        let base = x.flatten_all().unwrap().to_vec1::<f64>().unwrap();
        let h = 1e-6;
        for i in 0..base.len() {
            let at = |delta: f64| {
                let mut moved = base.clone();
                moved[i] += delta;
                loss(&Tensor::from_vec(moved, (ROWS, WIDTH), &device).unwrap())
            };
            let numeric = (at(h) - at(-h)) / (2.0 * h);
            assert!(
                (grad[i] - numeric).abs() <= 1e-7 * numeric.abs().max(1.0),
                "∂/∂x[{i}]: {} vs {numeric}",
                grad[i]
            );
        }
    }
}

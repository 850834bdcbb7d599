//! GELU, tanh approximation (GPT-2's), as one op with its analytic derivative.

use crate::engine::cpu::ops::custom_op::contiguous_range;
use crate::engine::error::Result;
use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor};

/// GELU, tanh approximation (GPT-2's): `½x(1 + tanh(√(2/π)(x + 0.044715x³)))`.
pub fn gelu_tanh(x: &Tensor) -> Result<Tensor> {
    Ok(x.contiguous()?.apply_op1(GeluTanh::Value)?)
}

/// GELU as one op. candle's `gelu` computes the same function, but its backward rounds the
/// constants to six digits (finite differences in f64 notice), and a composition of elementwise
/// ops would keep about eight `(batch, seq, hidden)` tensors per MLP for the backward pass; this
/// keeps its input only.
enum GeluTanh {
    Value,
    /// The derivative, for the backward pass.
    Derivative,
}

const SQRT_2_OVER_PI: f64 = 0.797_884_560_802_865_4;
const GELU_CUBIC: f64 = 0.044_715;

fn gelu(x: f64) -> f64 {
    0.5 * x * (1.0 + (SQRT_2_OVER_PI * (x + GELU_CUBIC * x * x * x)).tanh())
}

fn gelu_derivative(x: f64) -> f64 {
    let t = (SQRT_2_OVER_PI * (x + GELU_CUBIC * x * x * x)).tanh();
    0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * SQRT_2_OVER_PI * (1.0 + 3.0 * GELU_CUBIC * x * x)
}

impl CustomOp1 for GeluTanh {
    fn name(&self) -> &'static str {
        "gelu-tanh"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let f = match self {
            GeluTanh::Value => gelu,
            GeluTanh::Derivative => gelu_derivative,
        };
        let range = contiguous_range(self.name(), layout)?;
        let out = match storage {
            CpuStorage::F32(v) => {
                CpuStorage::F32(v[range].iter().map(|x| f(*x as f64) as f32).collect())
            }
            CpuStorage::F64(v) => CpuStorage::F64(v[range].iter().map(|x| f(*x)).collect()),
            _ => candle_core::bail!("gelu-tanh: only f32 and f64 are supported"),
        };
        Ok((out, layout.shape().clone()))
    }

    fn bwd(
        &self,
        arg: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        Ok(Some((grad_res * arg.apply_op1_no_bwd(&GeluTanh::Derivative)?)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    /// Values against candle's own tanh GELU (same formula) and gradients against central
    /// differences of our values, in f64 over −6..6: a wrong constant or term is far off.
    #[test]
    fn values_and_gradients_match() {
        let xs: Vec<f64> = (0..=120).map(|i| i as f64 / 10.0 - 6.0).collect();
        let x = Var::from_vec(xs.clone(), xs.len(), &Device::Cpu).unwrap();
        let ours = gelu_tanh(x.as_tensor()).unwrap();
        let theirs = x.as_tensor().gelu().unwrap();
        let gradient =
            ours.sum_all().unwrap().backward().unwrap().get(&x).unwrap().to_vec1::<f64>();
        let (ours, theirs) = (ours.to_vec1::<f64>().unwrap(), theirs.to_vec1::<f64>().unwrap());
        for (i, &x) in xs.iter().enumerate() {
            assert!((ours[i] - theirs[i]).abs() < 1e-12, "gelu({x}): {} vs {}", ours[i], theirs[i]);
            let h = 1e-5;
            let difference = (gelu(x + h) - gelu(x - h)) / (2.0 * h);
            let got = gradient.as_ref().unwrap()[i];
            assert!((got - difference).abs() < 1e-8, "gelu'({x}): {got} vs {difference}");
        }
    }
}

//! Differentiable building blocks shared by the model files. Each uses only candle ops that have
//! an exact backward pass (candle's fast `rms_norm`, `layer_norm`, `rope`, `rope_i` and
//! `softmax_last_dim` have none and would silently cut the gradient), or our own ops with an
//! analytic backward (the hot ones split over the pool's threads).

use crate::engine::cpu::ops::causal_softmax::CausalSoftmax;
use crate::engine::cpu::ops::custom_op::contiguous_range;
use crate::engine::cpu::ops::head_product;
use crate::engine::cpu::ops::linear::FrozenLinear;
use crate::engine::cpu::ops::rms_norm::RmsNorm;
use crate::engine::error::{EngineError, Result};
use crate::engine::model::arch::{RopeLayout, RopeSpec};
use crate::engine::runtime::context::StopToken;
use crate::engine::runtime::parallel;
use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor, WithDType};
use candle_nn::ops;
use std::sync::Arc;

/// RMSNorm over the last dimension: `x / sqrt(mean(x²) + eps) · weight`.
pub fn rms_norm(stop: &StopToken, x: &Tensor, weight: &Tensor, eps: f64) -> Result<Tensor> {
    Ok(x.contiguous()?.apply_op2(&weight.contiguous()?, RmsNorm { eps, stop: stop.clone() })?)
}

/// LayerNorm over the last dimension with a gain and a bias (GPT-2).
pub struct LayerNorm {
    pub weight: Tensor,
    pub bias: Tensor,
    pub eps: f64,
}

impl LayerNorm {
    /// `(x − mean) / sqrt(var + eps) · weight + bias`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(ops::layer_norm_slow(x, &self.weight, &self.bias, self.eps as f32)?)
    }
}

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

/// A frozen projection `x · Wᵀ (+ b)`. The bias is a constant: no gradient flows to it.
pub struct Projection {
    pub weight: FrozenLinear,
    pub bias: Option<Tensor>,
}

impl Projection {
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = self.weight.forward(x)?;
        Ok(match &self.bias {
            Some(bias) => y.broadcast_add(bias)?,
            None => y,
        })
    }
}

/// Rotary position embedding: each pair of a head's vector turned by its position's angles.
pub struct Rope {
    inv_freq: Vec<f64>,
    layout: RopeLayout,
}

impl Rope {
    pub fn new(spec: &RopeSpec) -> Self {
        Self { inv_freq: spec.inv_freq.clone(), layout: spec.layout }
    }

    /// Rotates `(batch, heads, seq, head_dim)`, whose rows are at positions `start..start + seq`,
    /// by position, pairing elements as `layout` says.
    pub fn apply(&self, stop: &StopToken, x: &Tensor, start: usize) -> Result<Tensor> {
        let (seq, head_dim) = (x.dim(2)?, x.dim(3)?);
        if head_dim != 2 * self.inv_freq.len() {
            return Err(EngineError::Internal(format!(
                "rope: heads of {head_dim} values, tables for {}",
                2 * self.inv_freq.len()
            )));
        }
        let angles =
            (start..start + seq).flat_map(|pos| self.inv_freq.iter().map(move |f| pos as f64 * f));
        let (cos, sin) = angles.map(|angle| (angle.cos(), angle.sin())).unzip();
        let rotation = Rotation {
            cos: Arc::new(cos),
            sin: Arc::new(sin),
            seq,
            layout: self.layout,
            inverse: false,
            stop: stop.clone(),
        };
        Ok(x.contiguous()?.apply_op1(rotation)?)
    }
}

/// Turns each pair `(a, b)` of a row at position `p` by the angles of `p`:
/// `(a cos − b sin, a sin + b cos)`; `inverse` turns the other way, which is the backward pass
/// (a rotation's transpose is its inverse). One pass over rows split over the pool's threads,
/// where candle's `rope_slow` took six ops, and as many again backward, on one thread.
struct Rotation {
    /// `seq × head_dim/2` values each, position-major.
    cos: Arc<Vec<f64>>,
    sin: Arc<Vec<f64>>,
    seq: usize,
    layout: RopeLayout,
    inverse: bool,
    stop: StopToken,
}

impl Rotation {
    fn rotate<T: WithDType>(&self, x: &[T]) -> candle_core::Result<Vec<T>> {
        let pairs = self.cos.len() / self.seq.max(1);
        let mut out = vec![T::zero(); x.len()];
        let sign = if self.inverse { -1.0 } else { 1.0 };
        parallel::by_rows(&self.stop, [x], 2 * pairs, &mut out, |row_index, [row], out| {
            let at = row_index % self.seq * pairs;
            for i in 0..pairs {
                let (cos, sin) =
                    (T::from_f64(self.cos[at + i]), T::from_f64(sign * self.sin[at + i]));
                let (first, second) = match self.layout {
                    RopeLayout::Interleaved => (2 * i, 2 * i + 1),
                    RopeLayout::Halves => (i, i + pairs),
                };
                let (a, b) = (row[first], row[second]);
                out[first] = a * cos - b * sin;
                out[second] = a * sin + b * cos;
            }
        })
        .map_err(candle_core::Error::wrap)?;
        Ok(out)
    }
}

impl CustomOp1 for Rotation {
    fn name(&self) -> &'static str {
        "rope"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let range = contiguous_range(self.name(), layout)?;
        if layout.shape().dims().len() != 4 || layout.shape().dims()[2] != self.seq {
            candle_core::bail!(
                "rope: input {:?} is not (batch, heads, {}, head_dim)",
                layout.shape(),
                self.seq
            );
        }
        let out = match storage {
            CpuStorage::F32(v) => CpuStorage::F32(self.rotate(&v[range])?),
            CpuStorage::F64(v) => CpuStorage::F64(self.rotate(&v[range])?),
            _ => candle_core::bail!("rope: only f32 and f64 are supported"),
        };
        Ok((out, layout.shape().clone()))
    }

    fn bwd(
        &self,
        _arg: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let inverse = Rotation {
            cos: self.cos.clone(),
            sin: self.sin.clone(),
            seq: self.seq,
            layout: self.layout,
            inverse: !self.inverse,
            stop: self.stop.clone(),
        };
        Ok(Some(grad_res.contiguous()?.apply_op1_no_bwd(&inverse)?))
    }
}

/// One block's attention keys and values (keys rotated where the family rotates them),
/// `(batch, kv_heads, positions, head_dim)`: all that later positions read of earlier ones.
#[derive(Clone, Debug)]
pub struct KeyValues {
    pub keys: Tensor,
    pub values: Tensor,
}

impl KeyValues {
    pub fn positions(&self) -> Result<usize> {
        Ok(self.keys.dim(2)?)
    }

    /// Those of the first `positions` positions.
    pub fn prefix(&self, positions: usize) -> Result<Self> {
        Ok(Self {
            keys: self.keys.narrow(2, 0, positions)?,
            values: self.values.narrow(2, 0, positions)?,
        })
    }
}

/// Causal multi-head attention with grouped key/value heads, for queries at the positions that
/// follow `past`'s (a prefix every row of the batch shares, batch 1; `None`: from position 0).
/// `q`: `(b, heads, seq, hd)`, `k`, `v`: `(b, kv_heads, seq, hd)`. Returns the mixed values
/// `(b, seq, heads · hd)`, the attention probabilities `(b, heads, seq, past + seq)`, and the keys
/// and values of all `past + seq` positions.
pub fn causal_attention(
    stop: &StopToken,
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    past: Option<&KeyValues>,
) -> Result<(Tensor, Tensor, KeyValues)> {
    let (b, heads, seq, hd) = q.dims4()?;
    let after = |past: &Tensor, new: &Tensor| -> Result<Tensor> {
        let (_, kv_heads, positions, _) = past.dims4()?;
        let shared = past.broadcast_as((b, kv_heads, positions, hd))?.contiguous()?;
        Ok(Tensor::cat(&[&shared, new], 2)?)
    };
    let (k, v) = match past {
        Some(past) => (after(&past.keys, k)?, after(&past.values, v)?),
        None => (k.clone(), v.clone()),
    };
    let scores = head_product::scores(stop, q, &k)?;
    let probs =
        scores.apply_op1(CausalSoftmax { scale: 1.0 / (hd as f64).sqrt(), stop: stop.clone() })?;
    let mixed =
        head_product::mix(stop, &probs, &v)?.transpose(1, 2)?.reshape((b, seq, heads * hd))?;
    Ok((mixed, probs, KeyValues { keys: k, values: v }))
}

/// `(b, seq, heads · hd)` → `(b, heads, seq, hd)`.
pub fn split_heads(x: &Tensor, heads: usize) -> Result<Tensor> {
    let (b, seq, width) = x.dims3()?;
    Ok(x.reshape((b, seq, heads, width / heads))?.transpose(1, 2)?.contiguous()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::runtime::random::SplitMix64;
    use candle_core::{DType, Device, Var};

    /// Values and gradients against candle's `rope_i_slow` / `rope_slow` (whose backward candle
    /// derives itself) on the same angles, for both pairings: 2 heads, 5 positions, 8 values.
    #[test]
    fn rope_equals_candle_s_slow_rotations() {
        let device = Device::Cpu;
        let mut rng = SplitMix64::new(7);
        let mut values = |count: usize| {
            (0..count).map(|_| (rng.next_u64() % 2001) as f64 / 1000.0 - 1.0).collect::<Vec<f64>>()
        };
        let shape = (1, 2, 5, 8);
        let x = Var::from_vec(values(80), shape, &device).unwrap();
        let mixing = Tensor::from_vec(values(80), shape, &device).unwrap();
        for layout in [RopeLayout::Interleaved, RopeLayout::Halves] {
            let rope = Rope::new(&RopeSpec::new(8, 10_000.0, None, layout));
            let angles: Vec<f64> =
                (0..5).flat_map(|pos| rope.inv_freq.iter().map(move |f| pos as f64 * f)).collect();
            let table = |f: fn(f64) -> f64| {
                Tensor::from_vec(angles.iter().map(|&a| f(a)).collect::<Vec<_>>(), (5, 4), &device)
                    .unwrap()
                    .to_dtype(DType::F64)
                    .unwrap()
            };
            let (cos, sin) = (table(f64::cos), table(f64::sin));
            let theirs = match layout {
                RopeLayout::Interleaved => {
                    candle_nn::rotary_emb::rope_i_slow(x.as_tensor(), &cos, &sin).unwrap()
                }
                RopeLayout::Halves => {
                    candle_nn::rotary_emb::rope_slow(x.as_tensor(), &cos, &sin).unwrap()
                }
            };
            let ours = rope.apply(&Default::default(), x.as_tensor(), 0).unwrap();
            let list = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f64>().unwrap();
            let gradient = |y: &Tensor| {
                list(
                    y.mul(&mixing)
                        .unwrap()
                        .sum_all()
                        .unwrap()
                        .backward()
                        .unwrap()
                        .get(&x)
                        .expect("a gradient"),
                )
            };
            for (what, a, b) in [
                ("values", list(&ours), list(&theirs)),
                ("gradients", gradient(&ours), gradient(&theirs)),
            ] {
                for (i, (p, q)) in a.iter().zip(&b).enumerate() {
                    assert!((p - q).abs() <= 1e-12, "{layout:?} {what}[{i}]: {p} vs {q}");
                }
            }
        }
    }
}

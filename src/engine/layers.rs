//! Differentiable building blocks shared by the model files. Each uses only candle ops that have
//! an exact backward pass (candle's fast `rms_norm`, `layer_norm`, `rope`, `rope_i` and
//! `softmax_last_dim` have none and would silently cut the gradient), or our own ops with an
//! analytic backward.

use super::causal_softmax::CausalSoftmax;
use super::error::Result;
use super::frozen_linear::FrozenLinear;
use candle_core::{CpuStorage, CustomOp1, DType, Device, Layout, Shape, Tensor};
use candle_nn::ops;
use candle_nn::rotary_emb;

/// RMSNorm over the last dimension: `x / sqrt(mean(x²) + eps) · weight`.
pub fn rms_norm(x: &Tensor, weight: &Tensor, eps: f64) -> Result<Tensor> {
    Ok(ops::rms_norm_slow(x, weight, eps as f32)?)
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

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let f = match self {
            GeluTanh::Value => gelu,
            GeluTanh::Derivative => gelu_derivative,
        };
        let (start, end) = layout
            .contiguous_offsets()
            .ok_or_else(|| candle_core::Error::Msg("gelu-tanh: input must be contiguous".into()))?;
        let out = match storage {
            CpuStorage::F32(v) => CpuStorage::F32(v[start..end].iter().map(|x| f(*x as f64) as f32).collect()),
            CpuStorage::F64(v) => CpuStorage::F64(v[start..end].iter().map(|x| f(*x)).collect()),
            _ => candle_core::bail!("gelu-tanh: only f32 and f64 are supported"),
        };
        Ok((out, layout.shape().clone()))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> candle_core::Result<Option<Tensor>> {
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

/// Which elements of a head's vector rotary positions turn together.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RopeLayout {
    /// Pairs `(x0, x1), (x2, x3), ...`: llama.cpp's converter permutes llama-family query and key
    /// weights into this layout (its `LLAMA_ROPE_TYPE_NORM`).
    Interleaved,
    /// Pairs `(x_i, x_{i + d/2})`, the two halves of the vector: Hugging Face's layout, kept by
    /// qwen2 GGUFs (llama.cpp's `LLAMA_ROPE_TYPE_NEOX`).
    Halves,
}

/// Rotary position tables for `seq_len` positions: `(cos, sin)`, each `(seq_len, head_dim / 2)`.
pub struct Rope {
    inv_freq: Vec<f64>,
    layout: RopeLayout,
}

impl Rope {
    /// `freq_factors` (Llama 3's `rope_freqs.weight`) divide the base frequencies when present.
    pub fn new(head_dim: usize, theta: f64, freq_factors: Option<Vec<f64>>, layout: RopeLayout) -> Self {
        let inv_freq = (0..head_dim / 2)
            .map(|i| {
                let base = 1.0 / theta.powf(2.0 * i as f64 / head_dim as f64);
                base / freq_factors.as_ref().map_or(1.0, |f| f[i])
            })
            .collect();
        Self { inv_freq, layout }
    }

    fn tables(&self, seq_len: usize, dtype: DType) -> Result<(Tensor, Tensor)> {
        let half = self.inv_freq.len();
        let mut cos = Vec::with_capacity(seq_len * half);
        let mut sin = Vec::with_capacity(seq_len * half);
        for pos in 0..seq_len {
            for f in &self.inv_freq {
                let angle = pos as f64 * f;
                cos.push(angle.cos());
                sin.push(angle.sin());
            }
        }
        let cos = Tensor::from_vec(cos, (seq_len, half), &Device::Cpu)?.to_dtype(dtype)?;
        let sin = Tensor::from_vec(sin, (seq_len, half), &Device::Cpu)?.to_dtype(dtype)?;
        Ok((cos, sin))
    }

    /// Rotates `(batch, heads, seq, head_dim)` by position, pairing elements as `layout` says.
    pub fn apply(&self, x: &Tensor) -> Result<Tensor> {
        let (cos, sin) = self.tables(x.dim(2)?, x.dtype())?;
        Ok(match self.layout {
            RopeLayout::Interleaved => rotary_emb::rope_i_slow(x, &cos, &sin)?,
            RopeLayout::Halves => rotary_emb::rope_slow(x, &cos, &sin)?,
        })
    }
}

/// Causal multi-head attention with grouped key/value heads.
/// `q`: `(b, heads, seq, hd)`, `k`, `v`: `(b, kv_heads, seq, hd)`.
/// Returns the mixed values `(b, seq, heads · hd)` and the attention probabilities `(b, heads, seq, seq)`.
pub fn causal_attention(q: &Tensor, k: &Tensor, v: &Tensor) -> Result<(Tensor, Tensor)> {
    let (b, heads, seq, hd) = q.dims4()?;
    let kv_heads = k.dim(1)?;
    let k = repeat_kv(k, heads / kv_heads)?;
    let v = repeat_kv(v, heads / kv_heads)?;
    let scores = q.matmul(&k.t()?)?;
    let probs = scores.apply_op1(CausalSoftmax { scale: 1.0 / (hd as f64).sqrt() })?;
    let mixed = probs.matmul(&v)?.transpose(1, 2)?.reshape((b, seq, heads * hd))?;
    Ok((mixed, probs))
}

/// Each key/value head serves `n_rep` consecutive query heads.
fn repeat_kv(x: &Tensor, n_rep: usize) -> Result<Tensor> {
    if n_rep == 1 {
        return Ok(x.clone());
    }
    let (b, kv_heads, seq, hd) = x.dims4()?;
    Ok(x.unsqueeze(2)?.broadcast_as((b, kv_heads, n_rep, seq, hd))?.reshape((b, kv_heads * n_rep, seq, hd))?)
}

/// `(b, seq, heads · hd)` → `(b, heads, seq, hd)`.
pub fn split_heads(x: &Tensor, heads: usize) -> Result<Tensor> {
    let (b, seq, width) = x.dims3()?;
    Ok(x.reshape((b, seq, heads, width / heads))?.transpose(1, 2)?.contiguous()?)
}

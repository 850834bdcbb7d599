//! Differentiable building blocks shared by the model files. Each uses only candle ops that have
//! a backward pass (candle's fast `rms_norm`, `rope_i` and `softmax_last_dim` have none and would
//! silently cut the gradient), or our own ops with an analytic backward.

use super::causal_softmax::CausalSoftmax;
use super::error::Result;
use candle_core::{DType, Device, Tensor};
use candle_nn::ops;
use candle_nn::rotary_emb;

/// RMSNorm over the last dimension: `x / sqrt(mean(x²) + eps) · weight`.
pub fn rms_norm(x: &Tensor, weight: &Tensor, eps: f64) -> Result<Tensor> {
    Ok(ops::rms_norm_slow(x, weight, eps as f32)?)
}

/// Rotary position tables for `seq_len` positions: `(cos, sin)`, each `(seq_len, head_dim / 2)`.
pub struct Rope {
    inv_freq: Vec<f64>,
}

impl Rope {
    /// `freq_factors` (Llama 3's `rope_freqs.weight`) divide the base frequencies when present.
    pub fn new(head_dim: usize, theta: f64, freq_factors: Option<Vec<f64>>) -> Self {
        let inv_freq = (0..head_dim / 2)
            .map(|i| {
                let base = 1.0 / theta.powf(2.0 * i as f64 / head_dim as f64);
                base / freq_factors.as_ref().map_or(1.0, |f| f[i])
            })
            .collect();
        Self { inv_freq }
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

    /// Rotates interleaved pairs `(x0, x1), (x2, x3), ...` of `(batch, heads, seq, head_dim)`,
    /// the layout llama.cpp's converter gives llama-family GGUFs.
    pub fn apply_interleaved(&self, x: &Tensor) -> Result<Tensor> {
        let (cos, sin) = self.tables(x.dim(2)?, x.dtype())?;
        Ok(rotary_emb::rope_i_slow(x, &cos, &sin)?)
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

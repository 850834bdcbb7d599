//! The blocks' shared pieces, composed of the ops: layer norm, a frozen projection, and causal
//! attention over a prefix's keys and values. Each uses only candle ops that have an exact
//! backward pass (candle's fast `rms_norm`, `layer_norm`, `rope`, `rope_i` and
//! `softmax_last_dim` have none and would silently cut the gradient), or our own (`ops`).

use crate::engine::cpu::ops::causal_softmax::CausalSoftmax;
use crate::engine::cpu::ops::head_product;
use crate::engine::cpu::ops::linear::FrozenLinear;
use crate::engine::error::Result;
use crate::engine::runtime::context::StopToken;
use candle_core::Tensor;
use candle_nn::ops;

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

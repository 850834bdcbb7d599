//! Rotary position embedding as one op: each pair of a head's vector turned by its position's
//! angles, forward and (the inverse rotation) backward, over rows split across the pool's threads.

use crate::engine::cpu::ops::custom_op::contiguous_range;
use crate::engine::error::{EngineError, Result};
use crate::engine::model::arch::{RopeLayout, RopeSpec};
use crate::engine::runtime::context::StopToken;
use crate::engine::runtime::parallel;
use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor, WithDType};
use std::sync::Arc;

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

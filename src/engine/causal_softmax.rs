//! Scaled, causally masked softmax over the last dimension as one op with an analytic backward.
//! Composed from candle's elementwise ops it would keep about seven `(heads, seq, seq)` tensors
//! per layer alive for the backward pass; this keeps its input and output only.

use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor, D};

/// `softmax(scale · x + mask)` with `mask[i, j] = -inf` for `j > i`, over `(..., seq, seq)`.
pub struct CausalSoftmax {
    pub scale: f64,
}

impl CausalSoftmax {
    fn forward_rows<T: Real>(&self, x: &[T], seq: usize) -> Vec<T> {
        let mut out = vec![T::zero(); x.len()];
        let scale = T::from_f64(self.scale);
        for (row_index, (row, out_row)) in x.chunks_exact(seq).zip(out.chunks_exact_mut(seq)).enumerate() {
            let visible = row_index % seq + 1; // query i sees keys 0..=i
            let max = row[..visible].iter().fold(T::neg_infinity(), |m, v| m.max(*v * scale));
            let mut sum = T::zero();
            for (o, v) in out_row[..visible].iter_mut().zip(&row[..visible]) {
                *o = (*v * scale - max).exp();
                sum = sum + *o;
            }
            for o in &mut out_row[..visible] {
                *o = *o / sum;
            }
        }
        out
    }
}

impl CustomOp1 for CausalSoftmax {
    fn name(&self) -> &'static str {
        "causal-softmax"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let seq = layout.shape().dims().last().copied().unwrap_or(0);
        let (start, end) = layout
            .contiguous_offsets()
            .ok_or_else(|| candle_core::Error::Msg("causal-softmax: input must be contiguous".into()))?;
        let out = match storage {
            CpuStorage::F32(v) => CpuStorage::F32(self.forward_rows(&v[start..end], seq)),
            CpuStorage::F64(v) => CpuStorage::F64(self.forward_rows(&v[start..end], seq)),
            _ => candle_core::bail!("causal-softmax: only f32 and f64 are supported"),
        };
        Ok((out, layout.shape().clone()))
    }

    /// y = softmax(s·x): ∂L/∂x = s · y ⊙ (g − Σⱼ gⱼ yⱼ). Masked entries have y = 0, so get 0.
    fn bwd(&self, _arg: &Tensor, res: &Tensor, grad_res: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let dot = (grad_res * res)?.sum_keepdim(D::Minus1)?;
        let grad = (res * grad_res.broadcast_sub(&dot)?)?;
        Ok(Some((grad * self.scale)?))
    }
}

/// The float operations the kernel needs, for f32 and f64.
trait Real: Copy + std::ops::Add<Output = Self> + std::ops::Sub<Output = Self> + std::ops::Mul<Output = Self> + std::ops::Div<Output = Self> {
    fn zero() -> Self;
    fn from_f64(v: f64) -> Self;
    fn neg_infinity() -> Self;
    fn max(self, other: Self) -> Self;
    fn exp(self) -> Self;
}

macro_rules! real {
    ($t:ty) => {
        impl Real for $t {
            fn zero() -> Self { 0.0 }
            fn from_f64(v: f64) -> Self { v as $t }
            fn neg_infinity() -> Self { <$t>::NEG_INFINITY }
            fn max(self, other: Self) -> Self { <$t>::max(self, other) }
            fn exp(self) -> Self { <$t>::exp(self) }
        }
    };
}
real!(f32);
real!(f64);

//! Scaled, causally masked softmax over the last dimension as one op with an analytic backward.
//! Composed from candle's elementwise ops it would keep about seven `(heads, seq, seq)` tensors
//! per layer alive for the backward pass; this keeps its input and output only. Rows are split
//! over the pool's threads, forward and backward.

use crate::engine::cpu::ops::custom_op::contiguous_range;
use crate::engine::runtime::context::StopToken;
use crate::engine::runtime::parallel;
use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Shape, Tensor};

/// `softmax(scale · x + mask)` over `(..., queries, keys)`, `queries ≤ keys`: the queries are the
/// last positions of the keys' sequence, so query `i` sees keys `0..=i + keys − queries` and
/// `mask` is -inf beyond (square: `j > i`; longer keys: a prefix whose keys were computed before).
pub struct CausalSoftmax {
    pub scale: f64,
    pub stop: StopToken,
}

impl CausalSoftmax {
    fn forward_rows<T: Real>(
        &self,
        x: &[T],
        queries: usize,
        keys: usize,
    ) -> candle_core::Result<Vec<T>> {
        let mut out = vec![T::zero(); x.len()];
        let scale = T::from_f64(self.scale);
        parallel::by_rows(&self.stop, [x], keys, &mut out, |row_index, [row], out_row| {
            let visible = row_index % queries + 1 + (keys - queries);
            let max = row[..visible].iter().fold(T::neg_infinity(), |m, v| m.max(*v * scale));
            let mut sum = T::zero();
            for (o, v) in out_row[..visible].iter_mut().zip(&row[..visible]) {
                *o = (*v * scale - max).exp();
                sum = sum + *o;
            }
            for o in &mut out_row[..visible] {
                *o = *o / sum;
            }
        })
        .map_err(candle_core::Error::wrap)?;
        Ok(out)
    }
}

impl CustomOp1 for CausalSoftmax {
    fn name(&self) -> &'static str {
        "causal-softmax"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (queries, keys) = match layout.shape().dims() {
            [.., queries, keys] if queries <= keys => (*queries, *keys),
            _ => candle_core::bail!(
                "causal-softmax: {:?} is not (..., queries, keys) with queries ≤ keys",
                layout.shape()
            ),
        };
        let range = contiguous_range(self.name(), layout)?;
        let out = match storage {
            CpuStorage::F32(v) => CpuStorage::F32(self.forward_rows(&v[range], queries, keys)?),
            CpuStorage::F64(v) => CpuStorage::F64(self.forward_rows(&v[range], queries, keys)?),
            _ => candle_core::bail!("causal-softmax: only f32 and f64 are supported"),
        };
        Ok((out, layout.shape().clone()))
    }

    fn bwd(
        &self,
        _arg: &Tensor,
        res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(res.contiguous()?.apply_op2_no_bwd(
            &grad_res.contiguous()?,
            &InputGradient { scale: self.scale, stop: self.stop.clone() },
        )?))
    }
}

/// The backward pass's op, from the output `y` and `g = ∂L/∂y`, row by row:
/// `∂L/∂x = s · y ⊙ (g − Σⱼ gⱼ yⱼ)`. Masked entries have y = 0, so get 0.
struct InputGradient {
    scale: f64,
    stop: StopToken,
}

impl InputGradient {
    fn rows<T: Real>(&self, y: &[T], g: &[T], keys: usize) -> candle_core::Result<Vec<T>> {
        let mut grad = vec![T::zero(); y.len()];
        let scale = T::from_f64(self.scale);
        parallel::by_rows(&self.stop, [y, g], keys, &mut grad, |_, [y, g], grad| {
            let dot = y.iter().zip(g).fold(T::zero(), |sum, (&y, &g)| sum + y * g);
            for ((out, &y), &g) in grad.iter_mut().zip(y).zip(g) {
                *out = scale * y * (g - dot);
            }
        })
        .map_err(candle_core::Error::wrap)?;
        Ok(grad)
    }
}

impl CustomOp2 for InputGradient {
    fn name(&self) -> &'static str {
        "causal-softmax-input-gradient"
    }

    fn cpu_fwd(
        &self,
        y: &CpuStorage,
        y_layout: &Layout,
        g: &CpuStorage,
        g_layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        if y_layout.shape() != g_layout.shape() {
            candle_core::bail!("causal-softmax: the gradient's shape differs from the output's");
        }
        let keys = y_layout.shape().dims().last().copied().unwrap_or(0);
        let (y_range, g_range) =
            (contiguous_range(self.name(), y_layout)?, contiguous_range(self.name(), g_layout)?);
        let grad = match (y, g) {
            (CpuStorage::F32(y), CpuStorage::F32(g)) => {
                CpuStorage::F32(self.rows(&y[y_range], &g[g_range], keys)?)
            }
            (CpuStorage::F64(y), CpuStorage::F64(g)) => {
                CpuStorage::F64(self.rows(&y[y_range], &g[g_range], keys)?)
            }
            _ => candle_core::bail!(
                "causal-softmax: only f32 and f64 operands of one type are supported"
            ),
        };
        Ok((grad, y_layout.shape().clone()))
    }
}

/// The float operations the kernel needs, for f32 and f64.
trait Real:
    Copy
    + Send
    + Sync
    + std::ops::Add<Output = Self>
    + std::ops::Sub<Output = Self>
    + std::ops::Mul<Output = Self>
    + std::ops::Div<Output = Self>
{
    fn zero() -> Self;
    fn from_f64(v: f64) -> Self;
    fn neg_infinity() -> Self;
    fn max(self, other: Self) -> Self;
    fn exp(self) -> Self;
}

macro_rules! real {
    ($t:ty) => {
        impl Real for $t {
            fn zero() -> Self {
                0.0
            }
            fn from_f64(v: f64) -> Self {
                v as $t
            }
            fn neg_infinity() -> Self {
                <$t>::NEG_INFINITY
            }
            fn max(self, other: Self) -> Self {
                <$t>::max(self, other)
            }
            fn exp(self) -> Self {
                <$t>::exp(self)
            }
        }
    };
}
real!(f32);
real!(f64);

#[cfg(test)]
mod tests {
    use super::CausalSoftmax;
    use candle_core::{Device, Tensor};

    /// Queries that are the last positions of a longer sequence get exactly the last rows of the
    /// square softmax: the same keys visible, the same normalisation.
    #[test]
    fn fewer_queries_than_keys_are_the_square_map_s_last_rows() {
        let values: Vec<f64> = (0..2 * 25).map(|i| ((i * 37 % 23) as f64 - 11.0) / 7.0).collect();
        let square = Tensor::from_vec(values, (2, 5, 5), &Device::Cpu).unwrap();
        let op = || CausalSoftmax { scale: 0.5, stop: Default::default() };
        let full = square.apply_op1(op()).unwrap();
        let last_two =
            square.narrow(1, 3, 2).unwrap().contiguous().unwrap().apply_op1(op()).unwrap();
        let expected = full.narrow(1, 3, 2).unwrap();
        assert_eq!(last_two.to_vec3::<f64>().unwrap(), expected.to_vec3::<f64>().unwrap());
        let row = |t: &Tensor| t.get(0).unwrap().get(0).unwrap().to_vec1::<f64>().unwrap();
        assert_eq!(row(&last_two)[4], 0.0, "query 3 of 5 sees keys 0..=3");
        assert!(
            square
                .narrow(1, 0, 2)
                .unwrap()
                .narrow(2, 0, 1)
                .unwrap()
                .contiguous()
                .unwrap()
                .apply_op1(op())
                .is_err(),
            "more queries than keys"
        );
    }
}

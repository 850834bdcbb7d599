//! `y = x · Wᵀ` with a frozen, quantized `W`, as a candle op whose backward gives the input
//! gradient `dy · W` and nothing else: no weight gradient is computed and no dense copy of `W`
//! outlives the call (candle's own matmul backward would do both).

use super::error::Result;
use super::parallel;
use super::weights::QuantizedMatrix;
use candle_core::{CpuStorage, CustomOp1, Device, Layout, Shape, Tensor};
use std::ops::Range;

#[derive(Clone)]
pub struct FrozenLinear {
    weight: QuantizedMatrix,
}

impl FrozenLinear {
    pub fn new(weight: QuantizedMatrix) -> Self {
        Self { weight }
    }

    pub fn out_features(&self) -> usize {
        self.weight.rows()
    }

    pub fn in_features(&self) -> usize {
        self.weight.cols()
    }

    /// `x`: `(..., in)` → `(..., out)`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.contiguous()?.apply_op1(self.clone())?)
    }

    /// `x2d · Wᵀ` for a `(n, in)` tensor, a block of rows of `W` at a time (one block per thread
    /// where the engine has several, see `engine::parallel`).
    fn product(&self, x2d: &Tensor) -> candle_core::Result<Tensor> {
        let parts = self.map_row_chunks(|rows| {
            let w = self.weight.dequantize_rows(rows, x2d.dtype()).map_err(candle_core::Error::wrap)?;
            x2d.matmul(&w.t()?)
        })?;
        Tensor::cat(&parts, 1)
    }

    /// `f` on each block of rows of `W`, in order.
    fn map_row_chunks<T: Send>(
        &self,
        f: impl Fn(Range<usize>) -> candle_core::Result<T> + Sync + Send,
    ) -> candle_core::Result<Vec<T>> {
        parallel::map(self.weight.row_chunks(parallel::threads()).collect(), f).into_iter().collect()
    }
}

impl CustomOp1 for FrozenLinear {
    fn name(&self) -> &'static str {
        "frozen-linear"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let dims = layout.shape().dims();
        let (&in_features, batch_dims) = dims.split_last().ok_or_else(|| candle_core::Error::Msg("frozen-linear: scalar input".into()))?;
        if in_features != self.in_features() {
            candle_core::bail!("frozen-linear: input has {in_features} features, the weight expects {}", self.in_features());
        }
        let (start, end) = layout
            .contiguous_offsets()
            .ok_or_else(|| candle_core::Error::Msg("frozen-linear: input must be contiguous".into()))?;
        let n = batch_dims.iter().product::<usize>();
        let x2d = match storage {
            CpuStorage::F32(v) => Tensor::from_slice(&v[start..end], (n, in_features), &Device::Cpu)?,
            CpuStorage::F64(v) => Tensor::from_slice(&v[start..end], (n, in_features), &Device::Cpu)?,
            _ => candle_core::bail!("frozen-linear: only f32 and f64 inputs are supported"),
        };
        let y = self.product(&x2d)?.flatten_all()?;
        let out = match storage {
            CpuStorage::F64(_) => CpuStorage::F64(y.to_vec1()?),
            _ => CpuStorage::F32(y.to_vec1()?),
        };
        let mut out_dims = batch_dims.to_vec();
        out_dims.push(self.out_features());
        Ok((out, Shape::from(out_dims)))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let n = grad_res.elem_count() / self.out_features();
        let grad2d = grad_res.reshape((n, self.out_features()))?;
        let parts = self.map_row_chunks(|rows| {
            let w = self.weight.dequantize_rows(rows.clone(), grad2d.dtype()).map_err(candle_core::Error::wrap)?;
            grad2d.narrow(1, rows.start, rows.len())?.contiguous()?.matmul(&w)
        })?;
        // Summed in block order, whichever thread computed each block.
        let mut parts = parts.into_iter();
        let first = parts.next().expect("a weight has at least one row");
        let grad_in = parts.try_fold(first, |acc, part| acc + part)?;
        Ok(Some(grad_in.reshape(arg.shape())?))
    }
}

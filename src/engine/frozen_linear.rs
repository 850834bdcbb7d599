//! `y = x · Wᵀ` with a frozen, quantized `W`, as a candle op whose backward gives the input
//! gradient `dy · W` and nothing else: no weight gradient is computed and no dense copy of `W`
//! outlives the call (candle's own matmul backward would do both).
//!
//! The products call `gemm` (the kernels behind candle's matmul) directly, one dequantized block
//! of rows of `W` per piece of `engine::parallel::map`, each on one thread: the engine decides how
//! work is split across threads, and no block is split again underneath.

use super::error::Result;
use super::parallel;
use super::weights::QuantizedMatrix;
use candle_core::{CpuStorage, CustomOp1, DType, Layout, Shape, Tensor, WithDType};
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

    /// `x · Wᵀ` for `n` row-major rows `x` of `in` values: `n × out` values.
    fn product<T: Element>(&self, x: &[T], n: usize) -> candle_core::Result<Vec<T>> {
        let (inputs, outputs) = (self.in_features(), self.out_features());
        let blocks = self.map_row_blocks(|rows, w: Vec<T>| {
            let mut block = vec![T::zero(); n * rows.len()];
            // block (n × len) = x (n × in) · w_blockᵀ (in × len): wᵀ is w read with its strides swapped.
            let out = Strided { values: &mut block[..], row_stride: rows.len(), col_stride: 1 };
            let lhs = Matrix { values: x, row_stride: inputs, col_stride: 1 };
            let rhs = Matrix { values: &w, row_stride: 1, col_stride: inputs };
            multiply(out, lhs, rhs, n, rows.len(), inputs);
            block
        })?;
        let mut y = vec![T::zero(); n * outputs];
        for (rows, block) in blocks {
            for (y_row, block_row) in y.chunks_exact_mut(outputs).zip(block.chunks_exact(rows.len())) {
                y_row[rows.clone()].copy_from_slice(block_row);
            }
        }
        Ok(y)
    }

    /// `dy · W` for `n` row-major rows `dy` of `out` values: `n × in` values.
    fn input_gradient<T: Element>(&self, dy: &[T], n: usize) -> candle_core::Result<Vec<T>> {
        let (inputs, outputs) = (self.in_features(), self.out_features());
        let parts = self.map_row_blocks(|rows, w: Vec<T>| {
            let mut part = vec![T::zero(); n * inputs];
            // part (n × in) = dy[:, rows] (n × len) · w_block (len × in).
            let out = Strided { values: &mut part[..], row_stride: inputs, col_stride: 1 };
            let lhs = Matrix { values: &dy[rows.start..], row_stride: outputs, col_stride: 1 };
            let rhs = Matrix { values: &w, row_stride: inputs, col_stride: 1 };
            multiply(out, lhs, rhs, n, inputs, rows.len());
            part
        })?;
        // Summed in block order, whichever thread computed each block.
        let mut parts = parts.into_iter().map(|(_, part)| part);
        let mut grad = parts.next().expect("a weight has at least one row");
        for part in parts {
            grad.iter_mut().zip(&part).for_each(|(g, p)| *g += *p);
        }
        Ok(grad)
    }

    /// `f(rows, W[rows] dense)` for each block of rows of `W`, in order: one block per thread
    /// where the engine has several, and blocks small enough to dequantize at once.
    fn map_row_blocks<T: Element, R: Send>(
        &self,
        f: impl Fn(Range<usize>, Vec<T>) -> R + Sync + Send,
    ) -> candle_core::Result<Vec<(Range<usize>, R)>> {
        let blocks = self.weight.row_chunks(parallel::threads()).collect();
        parallel::map(blocks, |rows: Range<usize>| {
            let w = self.weight.dequantize_rows_f32(rows.clone()).map_err(candle_core::Error::wrap)?;
            Ok((rows.clone(), f(rows, T::from_f32s(w))))
        })
        .map_err(candle_core::Error::wrap)?
        .into_iter()
        .collect()
    }
}

/// The precisions the op computes in: f32 (the page and the CLI), f64 (gradient checks).
trait Element: WithDType + Send + Sync {
    fn from_f32s(values: Vec<f32>) -> Vec<Self>;
}

impl Element for f32 {
    fn from_f32s(values: Vec<f32>) -> Vec<Self> {
        values
    }
}

impl Element for f64 {
    fn from_f32s(values: Vec<f32>) -> Vec<Self> {
        values.into_iter().map(f64::from).collect()
    }
}

struct Matrix<'a, T> {
    values: &'a [T],
    row_stride: usize,
    col_stride: usize,
}

struct Strided<'a, T> {
    values: &'a mut [T],
    row_stride: usize,
    col_stride: usize,
}

/// `out (m × n) = lhs (m × k) · rhs (k × n)` on the calling thread.
fn multiply<T: Element>(out: Strided<T>, lhs: Matrix<T>, rhs: Matrix<T>, m: usize, n: usize, k: usize) {
    // The last element each operand's strides reach must lie inside its slice: gemm reads and
    // writes through raw pointers.
    let last = |rows: usize, cols: usize, row_stride: usize, col_stride: usize| (rows - 1) * row_stride + (cols - 1) * col_stride;
    if m == 0 || n == 0 || k == 0 {
        return;
    }
    assert!(last(m, n, out.row_stride, out.col_stride) < out.values.len(), "frozen-linear: output out of bounds");
    assert!(last(m, k, lhs.row_stride, lhs.col_stride) < lhs.values.len(), "frozen-linear: lhs out of bounds");
    assert!(last(k, n, rhs.row_stride, rhs.col_stride) < rhs.values.len(), "frozen-linear: rhs out of bounds");
    // SAFETY: the asserts above keep every access inside the three slices, and `out` is borrowed
    // mutably, so no other reference sees it while gemm writes.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.values.as_mut_ptr(),
            out.col_stride as isize,
            out.row_stride as isize,
            false,
            lhs.values.as_ptr(),
            lhs.col_stride as isize,
            lhs.row_stride as isize,
            rhs.values.as_ptr(),
            rhs.col_stride as isize,
            rhs.row_stride as isize,
            T::zero(),
            T::one(),
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
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
        let out = match storage {
            CpuStorage::F32(v) => CpuStorage::F32(self.product(&v[start..end], n)?),
            CpuStorage::F64(v) => CpuStorage::F64(self.product(&v[start..end], n)?),
            _ => candle_core::bail!("frozen-linear: only f32 and f64 inputs are supported"),
        };
        let mut out_dims = batch_dims.to_vec();
        out_dims.push(self.out_features());
        Ok((out, Shape::from(out_dims)))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let n = grad_res.elem_count() / self.out_features();
        let dy = grad_res.flatten_all()?;
        let grad = match dy.dtype() {
            DType::F32 => Tensor::new(self.input_gradient(&dy.to_vec1::<f32>()?, n)?, dy.device())?,
            DType::F64 => Tensor::new(self.input_gradient(&dy.to_vec1::<f64>()?, n)?, dy.device())?,
            other => candle_core::bail!("frozen-linear: no backward in {other:?}"),
        };
        Ok(Some(grad.reshape(arg.shape())?))
    }
}

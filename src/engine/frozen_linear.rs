//! `y = x · Wᵀ` with a frozen, quantized `W`, as a candle op whose backward gives the input
//! gradient `dy · W` and nothing else: no weight gradient is computed and no dense copy of `W`
//! outlives the call (candle's own matmul backward would do both).
//!
//! Each product is split into dequantized blocks of rows of `W`, the pieces of one
//! `engine::parallel::map` (`parallel::pieces` of them), each on one thread: the engine decides
//! how work is split across threads, and no block is split again underneath. In `x · Wᵀ` each
//! piece writes its own block of columns of the result; in `dy · W` the pieces' partial products
//! are added up in block order. A piece multiplies with `gemm` (the kernels behind candle's
//! matmul), called directly, or in the page with our own 128-bit kernel (`panel_matmul`).

use super::custom_op::contiguous_range;
use super::dense::{gemm_multiply, Matrix, Output};
use super::error::Result;
use super::parallel;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
use super::panel_matmul;
use super::weights::QuantizedMatrix;
use candle_core::{CpuStorage, CustomOp1, DType, Layout, Shape, Tensor, WithDType};
use std::marker::PhantomData;
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

    /// `x · Wᵀ` for `n` row-major rows `x` of `in` values: `n × out` values. Each piece takes a
    /// block of rows of `W` and writes its block of columns of the result.
    fn product<T: Element>(&self, x: &[T], n: usize) -> candle_core::Result<Vec<T>> {
        let (inputs, outputs) = (self.in_features(), self.out_features());
        let mut y = vec![T::zero(); n * outputs];
        let out = ColumnBlocks::new(&mut y, n, outputs);
        let blocks = self.weight.row_chunks(parallel::pieces()).collect();
        let pieces = parallel::map(blocks, |rows: Range<usize>| {
            let w = T::from_f32s(self.weight.dequantize_rows_f32(rows.clone()).map_err(candle_core::Error::wrap)?);
            // y[:, rows] (n × len) = x (n × in) · w_blockᵀ (in × len): wᵀ is w read with its strides swapped.
            let lhs = Matrix { values: x, row_stride: inputs, col_stride: 1 };
            let rhs = Matrix { values: &w, row_stride: 1, col_stride: inputs };
            T::multiply(out.columns(rows.clone()), lhs, rhs, n, rows.len(), inputs);
            Ok::<_, candle_core::Error>(())
        });
        pieces.map_err(candle_core::Error::wrap)?.into_iter().collect::<candle_core::Result<()>>()?;
        Ok(y)
    }

    /// `dy · W` for `n` row-major rows `dy` of `out` values: `n × in` values. Each piece takes a
    /// block of rows of `W`; their partial products are added up in block order.
    fn input_gradient<T: Element>(&self, dy: &[T], n: usize) -> candle_core::Result<Vec<T>> {
        let (inputs, outputs) = (self.in_features(), self.out_features());
        let blocks = self.weight.row_chunks(parallel::pieces()).collect();
        let parts = parallel::map(blocks, |rows: Range<usize>| {
            let w = T::from_f32s(self.weight.dequantize_rows_f32(rows.clone()).map_err(candle_core::Error::wrap)?);
            let mut part = vec![T::zero(); n * inputs];
            // part (n × in) = dy[:, rows] (n × len) · w_block (len × in).
            let lhs = Matrix { values: &dy[rows.start..], row_stride: outputs, col_stride: 1 };
            let rhs = Matrix { values: &w, row_stride: inputs, col_stride: 1 };
            T::multiply(Output::of_slice(&mut part, n, inputs), lhs, rhs, n, inputs, rows.len());
            Ok::<_, candle_core::Error>(part)
        })
        .map_err(candle_core::Error::wrap)?;
        let mut parts = parts.into_iter();
        let mut grad: Vec<T> = parts.next().expect("a weight has at least one row")?;
        for part in parts {
            grad.iter_mut().zip(&part?).for_each(|(g, p)| *g += *p);
        }
        Ok(grad)
    }
}

/// A row-major `rows × cols` matrix whose blocks of columns are written by different threads at
/// once: a block of columns is not a contiguous slice, so each writer gets raw row pointers.
struct ColumnBlocks<'a, T> {
    values: *mut T,
    rows: usize,
    cols: usize,
    _borrow: PhantomData<&'a mut [T]>,
}

// SAFETY: the pointer is only written through `columns`, whose callers write disjoint columns.
unsafe impl<T: Send> Send for ColumnBlocks<'_, T> {}
unsafe impl<T: Send> Sync for ColumnBlocks<'_, T> {}

impl<'a, T> ColumnBlocks<'a, T> {
    fn new(values: &'a mut [T], rows: usize, cols: usize) -> Self {
        assert_eq!(values.len(), rows * cols, "frozen-linear: output size");
        Self { values: values.as_mut_ptr(), rows, cols, _borrow: PhantomData }
    }

    /// The output rows' values in `range`: each piece of a map asks for a different range (the
    /// blocks of `row_chunks` do not overlap), so no value has two writers.
    fn columns(&self, range: Range<usize>) -> Output<'_, T> {
        assert!(range.start <= range.end && range.end <= self.cols, "frozen-linear: columns out of bounds");
        Output { first: self.values.wrapping_add(range.start), row_stride: self.cols, rows: self.rows, cols: range.len(), _borrow: PhantomData }
    }
}

/// The precisions the op computes in: f32 (the page and the CLI), f64 (gradient checks).
trait Element: WithDType {
    fn from_f32s(values: Vec<f32>) -> Vec<Self>;

    /// `out (m × n) = lhs (m × k) · rhs (k × n)` on the calling thread.
    fn multiply(out: Output<Self>, lhs: Matrix<Self>, rhs: Matrix<Self>, m: usize, n: usize, k: usize) {
        gemm_multiply(out, lhs, rhs, m, n, k, false)
    }
}

impl Element for f32 {
    fn from_f32s(values: Vec<f32>) -> Vec<Self> {
        values
    }

    /// In the page, our own kernel on 128-bit lanes (`panel_matmul`), faster there than gemm's,
    /// once `lhs` has enough rows to repay the copy of `rhs` into panels (the output projection
    /// of one position, `m` = 1, would copy the whole vocabulary matrix for one row).
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    fn multiply(out: Output<Self>, lhs: Matrix<Self>, rhs: Matrix<Self>, m: usize, n: usize, k: usize) {
        if m < panel_matmul::MIN_ROWS {
            return gemm_multiply(out, lhs, rhs, m, n, k, false);
        }
        assert!(out.rows == m && out.cols == n && lhs.col_stride == 1, "frozen-linear: operand shapes");
        let rhs = panel_matmul::PackedRhs::pack(rhs.values, k, n, rhs.row_stride, rhs.col_stride);
        // SAFETY: `out` is this piece's own block of columns (`ColumnBlocks::columns`): m rows of
        // n values, row_stride apart, that nothing else reads or writes meanwhile.
        unsafe { panel_matmul::multiply(out.first, out.row_stride, lhs.values, lhs.row_stride, m, &rhs) };
    }
}

impl Element for f64 {
    fn from_f32s(values: Vec<f32>) -> Vec<Self> {
        values.into_iter().map(f64::from).collect()
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
        let range = contiguous_range(self.name(), layout)?;
        let n = batch_dims.iter().product::<usize>();
        let out = match storage {
            CpuStorage::F32(v) => CpuStorage::F32(self.product(&v[range], n)?),
            CpuStorage::F64(v) => CpuStorage::F64(self.product(&v[range], n)?),
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

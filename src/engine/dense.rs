//! One thread's dense matrix product by gemm (the kernels behind candle's matmul), called directly
//! on strided slices, so that no operand is copied into a transposed or narrowed tensor: the
//! engine's one unsafe call into gemm, with every operand's bounds asserted before it.

use candle_core::WithDType;
use std::marker::PhantomData;

/// A read-only matrix: element `(r, c)` is `values[r·row_stride + c·col_stride]`.
pub struct Matrix<'a, T> {
    pub values: &'a [T],
    pub row_stride: usize,
    pub col_stride: usize,
}

/// `rows × cols` values from `first`, rows `row_stride` apart, that one writer owns while this
/// lives: a block of columns of a matrix whose other blocks other threads fill at the same time
/// (not a contiguous slice, hence the pointer), or a whole slice ([`Output::of_slice`]).
pub struct Output<'a, T> {
    pub first: *mut T,
    pub row_stride: usize,
    pub rows: usize,
    pub cols: usize,
    pub _borrow: PhantomData<&'a ()>,
}

impl<'a, T> Output<'a, T> {
    /// All of `values`, `rows × cols` row-major.
    pub fn of_slice(values: &'a mut [T], rows: usize, cols: usize) -> Self {
        assert_eq!(values.len(), rows * cols, "dense: output size");
        Self { first: values.as_mut_ptr(), row_stride: cols, rows, cols, _borrow: PhantomData }
    }
}

/// `out (m × n) = lhs (m × k) · rhs (k × n)` on the calling thread, or `out += lhs · rhs` with
/// `accumulate`.
pub fn gemm_multiply<T: WithDType>(out: Output<T>, lhs: Matrix<T>, rhs: Matrix<T>, m: usize, n: usize, k: usize, accumulate: bool) {
    // The last element each operand's strides reach must lie inside its slice: gemm reads through
    // raw pointers.
    let last = |rows: usize, cols: usize, row_stride: usize, col_stride: usize| (rows - 1) * row_stride + (cols - 1) * col_stride;
    if m == 0 || n == 0 || k == 0 {
        // gemm would write nothing; the callers' outputs start zeroed.
        return;
    }
    assert!(out.rows == m && out.cols == n, "dense: output shape");
    assert!(last(m, k, lhs.row_stride, lhs.col_stride) < lhs.values.len(), "dense: lhs out of bounds");
    assert!(last(k, n, rhs.row_stride, rhs.col_stride) < rhs.values.len(), "dense: rhs out of bounds");
    // SAFETY: the asserts above keep every read inside `lhs` and `rhs`, and `out` is its writer's
    // own (`Output`), which nothing else touches meanwhile.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.first,
            1,
            out.row_stride as isize,
            accumulate,
            lhs.values.as_ptr(),
            lhs.col_stride as isize,
            lhs.row_stride as isize,
            rhs.values.as_ptr(),
            rhs.col_stride as isize,
            rhs.row_stride as isize,
            if accumulate { T::one() } else { T::zero() },
            T::one(),
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
    }
}

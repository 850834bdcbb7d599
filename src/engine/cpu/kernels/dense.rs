//! One thread's dense matrix product by gemm (the kernels behind candle's matmul), called directly
//! on strided slices, so that no operand is copied into a transposed or narrowed tensor: the
//! engine's one unsafe call into gemm, with every operand's bounds asserted before it.

use candle_core::WithDType;
use std::marker::PhantomData;
use std::ops::Range;

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

/// A row-major `rows × cols` matrix whose blocks of columns are written by different threads at
/// once: a block of columns is not a contiguous slice, so each writer gets raw row pointers.
pub struct ColumnBlocks<'a, T> {
    values: *mut T,
    rows: usize,
    cols: usize,
    _borrow: PhantomData<&'a mut [T]>,
}

// SAFETY: the pointer is only written through `columns`, whose callers write disjoint columns.
unsafe impl<T: Send> Send for ColumnBlocks<'_, T> {}
unsafe impl<T: Send> Sync for ColumnBlocks<'_, T> {}

impl<'a, T> ColumnBlocks<'a, T> {
    pub fn new(values: &'a mut [T], rows: usize, cols: usize) -> Self {
        assert_eq!(values.len(), rows * cols, "dense: output size");
        Self { values: values.as_mut_ptr(), rows, cols, _borrow: PhantomData }
    }

    /// The output rows' values in `range`: each piece of a map asks for a different range (the
    /// blocks of `row_chunks` do not overlap), so no value has two writers.
    pub fn columns(&self, range: Range<usize>) -> Output<'_, T> {
        assert!(range.start <= range.end && range.end <= self.cols, "dense: columns out of bounds");
        Output {
            first: self.values.wrapping_add(range.start),
            row_stride: self.cols,
            rows: self.rows,
            cols: range.len(),
            _borrow: PhantomData,
        }
    }
}

/// `out (m × n) = lhs (m × k) · rhs (k × n)` on the calling thread, or `out += lhs · rhs` with
/// `accumulate`.
pub fn gemm_multiply<T: WithDType>(
    out: Output<T>,
    lhs: Matrix<T>,
    rhs: Matrix<T>,
    m: usize,
    n: usize,
    k: usize,
    accumulate: bool,
) {
    // The last element each operand's strides reach must lie inside its slice: gemm reads through
    // raw pointers.
    let last = |rows: usize, cols: usize, row_stride: usize, col_stride: usize| {
        (rows - 1) * row_stride + (cols - 1) * col_stride
    };
    if m == 0 || n == 0 || k == 0 {
        // gemm would write nothing; the callers' outputs start zeroed.
        return;
    }
    assert!(out.rows == m && out.cols == n, "dense: output shape");
    assert!(
        last(m, k, lhs.row_stride, lhs.col_stride) < lhs.values.len(),
        "dense: lhs out of bounds"
    );
    assert!(
        last(k, n, rhs.row_stride, rhs.col_stride) < rhs.values.len(),
        "dense: rhs out of bounds"
    );
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

/// Test support for the matrix kernels (`panel_matmul`, `avx512_matmul`): operands, and the one
/// check each kernel's test makes against the plain triple loop.
#[cfg(test)]
pub mod kernel_check {
    use crate::engine::runtime::random::SplitMix64;

    /// Says that a kernel's test could not run on this CPU, as `SKIP name (why)` on the process's
    /// own stderr (the harness captures only `eprint!`): `scripts/test.sh` counts these lines as
    /// skipped checks, never as passed ones.
    pub fn skip(name: &str, why: &str) {
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), "SKIP {name} ({why})");
    }

    /// `count` values in −1..=1, in steps of 1/1000.
    pub fn values(count: usize, rng: &mut SplitMix64) -> Vec<f32> {
        (0..count).map(|_| (rng.next_u64() % 2001) as f32 / 1000.0 - 1.0).collect()
    }

    /// Runs `kernel(out, out_stride, accumulate)`, once overwriting and once adding to `out`, and
    /// checks `out[i][c] = Σ_r lhs[i·lhs_stride + r] · rhs(r, c)` for `i < m`, `c < n`, `r < k`.
    /// `out` has rows of `n + 2` values: the two beyond the columns are NaN and must stay so.
    #[allow(clippy::too_many_arguments)] // the product's shape and strides, as the kernels take them
    pub fn check(
        m: usize,
        k: usize,
        n: usize,
        lhs: &[f32],
        lhs_stride: usize,
        rhs: impl Fn(usize, usize) -> f32,
        what: &str,
        kernel: impl Fn(&mut [f32], usize, bool),
    ) {
        let out_stride = n + 2;
        for accumulate in [false, true] {
            // Within the columns, what `accumulate` adds to.
            let start =
                |i: usize, c: usize| if c >= n { f32::NAN } else { (i * 31 + c) as f32 / 64.0 };
            let mut out: Vec<f32> =
                (0..m * out_stride).map(|at| start(at / out_stride, at % out_stride)).collect();
            kernel(&mut out, out_stride, accumulate);
            for i in 0..m {
                for c in 0..out_stride {
                    let got = out[i * out_stride + c];
                    if c >= n {
                        assert!(
                            got.is_nan(),
                            "{what} ({m}, {k}, {n}): out[{i}][{c}] beyond the columns was written"
                        );
                        continue;
                    }
                    let product: f64 =
                        (0..k).map(|r| lhs[i * lhs_stride + r] as f64 * rhs(r, c) as f64).sum();
                    let want = product + if accumulate { start(i, c) as f64 } else { 0.0 };
                    assert!((got as f64 - want).abs() <= 1e-5 * (k as f64).max(1.0), "{what} ({m}, {k}, {n}) accumulate={accumulate}: out[{i}][{c}] = {got}, want {want}");
                }
            }
        }
    }
}

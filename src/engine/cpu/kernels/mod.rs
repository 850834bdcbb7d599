//! The matrix kernels, and the one place that says which computes a product on this target:
//! [`Element`] (per precision and target), [`decoded_storage`] (how the CLI keeps weights), and
//! the column unit the ops split products by. The ops split the work across threads; a kernel
//! computes one piece on the calling thread.

// The CLI's matrix kernels on CPUs with AVX-512 (chosen at run time; gemm elsewhere).
#[cfg(target_arch = "x86_64")]
pub(crate) mod avx512_matmul;
pub(crate) mod dense;
pub(crate) mod lanes;
// The page's matrix kernel; natively only its tests (gemm computes there).
#[cfg(any(test, all(target_arch = "wasm32", target_feature = "simd128")))]
pub(crate) mod panel_matmul;

use crate::engine::model::weights::{QuantizedMatrix, WeightStorage, PANEL};
use crate::engine::runtime::context::StopToken;
use crate::engine::runtime::parallel;
use candle_core::WithDType;
use dense::{gemm_multiply, Matrix, Output};
use std::borrow::Cow;
use std::ops::Range;

/// How to keep weights decoded for these kernels: as panels where the CPU has the AVX-512
/// kernels that read them (a third faster natively), else row-major.
pub fn decoded_storage() -> WeightStorage {
    #[cfg(target_arch = "x86_64")]
    if avx512_matmul::available() {
        return WeightStorage::Panels;
    }
    WeightStorage::Decoded
}

/// A piece's columns of the result (of `x · Wᵀ` or `dy · W`) come in multiples of the kernels'
/// panel width (the page's 8, the CLI's 16), so that no panel but the result's last is cut short.
pub(crate) const COLUMN_UNIT: usize = if cfg!(target_arch = "wasm32") { 8 } else { PANEL };

/// The precisions the products compute in: f32 (the page and the CLI), f64 (gradient checks).
/// Each says which kernel computes a block of a product on this target.
pub(crate) trait Element: WithDType {
    fn from_f32s(values: Cow<'_, [f32]>) -> Cow<'_, [Self]>;

    /// `out (m × n) = lhs (m × k) · rhs (k × n)` on the calling thread, or `out += lhs · rhs`
    /// with `accumulate`.
    fn multiply(
        out: Output<Self>,
        lhs: Matrix<Self>,
        rhs: Matrix<Self>,
        m: usize,
        n: usize,
        k: usize,
        accumulate: bool,
    ) {
        gemm_multiply(out, lhs, rhs, m, n, k, accumulate)
    }

    /// `out` (the result's columns `rows`, one per row of `W`) = `x · W[rows]ᵀ`.
    fn forward_block(
        weight: &QuantizedMatrix,
        out: Output<Self>,
        x: &[Self],
        rows: Range<usize>,
    ) -> candle_core::Result<()> {
        dequantized_forward_block(weight, out, x, rows)
    }

    /// `dy · W` for `n` rows of `dy`, by a kernel of this target's own that takes the whole
    /// product where it beats blocks of [`Self::multiply`]; `None` where there is none.
    fn whole_input_gradient(
        _weight: &QuantizedMatrix,
        _stop: &StopToken,
        _dy: &[Self],
        _n: usize,
    ) -> Option<candle_core::Result<Vec<Self>>> {
        None
    }
}

/// A group of `W`'s rows cut into one block per thread (whole `unit`s), each fetched by `fetch`
/// (dequantized, borrowed or packed) on its thread: the blocks every piece of `dy · W` reads.
pub(crate) fn row_blocks<B: Send>(
    stop: &StopToken,
    group: Range<usize>,
    unit: usize,
    fetch: impl Fn(Range<usize>) -> candle_core::Result<B> + Sync + Send,
) -> candle_core::Result<Vec<(Range<usize>, B)>> {
    parallel::map(stop, parallel::split(group, parallel::threads(), unit), |rows: Range<usize>| {
        Ok((rows.clone(), fetch(rows)?))
    })
    .map_err(candle_core::Error::wrap)?
    .into_iter()
    .collect()
}

/// Rows `rows` of `weight`, row-major, in the op's precision (borrowed when kept decoded in f32).
pub(crate) fn dequantized<T: Element>(
    weight: &QuantizedMatrix,
    rows: Range<usize>,
) -> candle_core::Result<Cow<'_, [T]>> {
    Ok(T::from_f32s(weight.dequantize_rows_f32(rows).map_err(candle_core::Error::wrap)?))
}

/// [`Element::forward_block`] on `W`'s rows dequantized (or borrowed) row-major, by `multiply`.
fn dequantized_forward_block<T: Element>(
    weight: &QuantizedMatrix,
    out: Output<T>,
    x: &[T],
    rows: Range<usize>,
) -> candle_core::Result<()> {
    let inputs = weight.cols();
    let w = dequantized::<T>(weight, rows.clone())?;
    // out (n × len) = x (n × in) · w_blockᵀ (in × len): wᵀ is w read with its strides swapped.
    let lhs = Matrix { values: x, row_stride: inputs, col_stride: 1 };
    let rhs = Matrix { values: &w, row_stride: 1, col_stride: inputs };
    let n = out.rows;
    T::multiply(out, lhs, rhs, n, rows.len(), inputs, false);
    Ok(())
}

impl Element for f32 {
    fn from_f32s(values: Cow<'_, [f32]>) -> Cow<'_, [Self]> {
        values
    }

    /// In the page, our own kernel on 128-bit lanes (`panel_matmul`), faster there than gemm's:
    /// always where it reads `rhs` in place (the backward pass; measured with the vocabulary's
    /// `dy · W` of one position among them: saliency at 16 tokens 440 and 444 ms against 472 and
    /// 493 ms with gemm below `MIN_ROWS`, at 64 tokens 881 and 840 ms against 945 and 937 ms,
    /// medians of 10-12 runs in Chromium), else once `lhs` has enough rows to repay the copy of
    /// `rhs` into panels (the output projection of one position, `m` = 1, would copy the whole
    /// vocabulary matrix for one row).
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    fn multiply(
        out: Output<Self>,
        lhs: Matrix<Self>,
        rhs: Matrix<Self>,
        m: usize,
        n: usize,
        k: usize,
        accumulate: bool,
    ) {
        if m < panel_matmul::MIN_ROWS && !panel_matmul::reads_in_place(n, rhs.col_stride) {
            return gemm_multiply(out, lhs, rhs, m, n, k, accumulate);
        }
        assert!(
            out.rows == m && out.cols == n && lhs.col_stride == 1,
            "frozen-linear: operand shapes"
        );
        let rhs = panel_matmul::Panels::new(rhs.values, k, n, rhs.row_stride, rhs.col_stride);
        // SAFETY: `out` is this piece's own block of columns (`ColumnBlocks::columns`): m rows of
        // n values, row_stride apart, that nothing else reads or writes meanwhile.
        unsafe {
            panel_matmul::multiply(
                out.first,
                out.row_stride,
                lhs.values,
                lhs.row_stride,
                m,
                &rhs,
                accumulate,
            )
        };
    }

    /// Natively, on CPUs with AVX-512, our kernel on `W` as panels (`avx512_matmul`); otherwise
    /// gemm.
    #[cfg(target_arch = "x86_64")]
    fn forward_block(
        weight: &QuantizedMatrix,
        out: Output<Self>,
        x: &[Self],
        rows: Range<usize>,
    ) -> candle_core::Result<()> {
        if !avx512_matmul::available() {
            return dequantized_forward_block(weight, out, x, rows);
        }
        let w = weight.panels(rows.clone()).map_err(candle_core::Error::wrap)?;
        // SAFETY: the CPU has AVX-512 (checked above), and `out` is this piece's own block of
        // columns (`ColumnBlocks::columns`): its rows of `rows.len()` values, row_stride apart,
        // that nothing else reads or writes meanwhile. The kernel checks the operands' bounds.
        unsafe {
            avx512_matmul::multiply(
                out.first,
                out.row_stride,
                x,
                weight.cols(),
                out.rows,
                &w,
                rows.len(),
                weight.cols(),
            )
        };
        Ok(())
    }

    /// Natively, on CPUs with AVX-512 and for short `dy`, our kernel on `W` as panels.
    #[cfg(target_arch = "x86_64")]
    fn whole_input_gradient(
        weight: &QuantizedMatrix,
        stop: &StopToken,
        dy: &[Self],
        n: usize,
    ) -> Option<candle_core::Result<Vec<Self>>> {
        let fits = (1..=avx512_matmul::MAX_GRADIENT_ROWS).contains(&n);
        (fits && avx512_matmul::available())
            .then(|| avx512_matmul::input_gradient(weight, stop, dy, n))
    }
}

impl Element for f64 {
    fn from_f32s(values: Cow<'_, [f32]>) -> Cow<'_, [Self]> {
        Cow::Owned(values.iter().map(|&v| f64::from(v)).collect())
    }
}

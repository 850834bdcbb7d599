//! The page's f32 matrix product, on 128-bit lanes: `out = lhs · rhs` with `rhs` read as panels
//! of [`PANEL`] columns (copied into them unless its rows already hold them), so the inner loop
//! reads one panel row (two lanes) and one value of each of [`TILE_ROWS`] rows of `lhs` per step,
//! and keeps the whole tile's sums in registers.
//!
//! Why our own: gemm's 128-bit kernel measured 1.2–1.3× slower than this one in V8, and with the
//! relaxed-SIMD fused multiply-add (the page's `threads-relaxed` build, for browsers that have
//! it) 1.3–1.6× slower, at the page's shapes (64 × 576 by 576 × 288 and the like). Natively gemm's
//! AVX2 kernels stay faster; there this module is compiled for its tests only, on portable lanes.

use crate::engine::cpu::kernels::lanes;
use std::borrow::Cow;

/// Columns per panel: two lanes of 4.
pub const PANEL: usize = 8;
/// Rows of `lhs` (and `out`) per tile: 4 × 2 lanes of sums, which with the panel's two lanes and
/// the broadcast value fit the 16 vector registers of x86-64 that V8 allocates.
pub const TILE_ROWS: usize = 4;

/// Rows of `lhs` from which copying `rhs` into panels pays: the copy costs about as much as 1/8 of
/// a row's products per value, so from 32 rows on it is at most a quarter of the work.
pub const MIN_ROWS: usize = 32;

/// `rhs` (`k × n`) as panels of `PANEL` columns: panel `p` holds rows `0..k` of columns
/// `p·PANEL..`, `PANEL` values per row. A row-major `rhs` whose columns fill whole panels is read
/// where it lies, its rows `row_stride` apart; any other is copied, each panel's rows contiguous
/// and the last panel padded with zeros.
pub struct Panels<'a> {
    values: Cow<'a, [f32]>,
    k: usize,
    n: usize,
    /// From a value of a panel to the one below it.
    row_stride: usize,
    /// From a panel's first value to the next panel's.
    panel_stride: usize,
}

/// Whether [`Panels::new`] reads a `rhs` of `n` columns, `col_stride` apart, where it lies.
pub fn reads_in_place(n: usize, col_stride: usize) -> bool {
    col_stride == 1 && n.is_multiple_of(PANEL)
}

impl<'a> Panels<'a> {
    /// The panels of the `k × n` matrix whose element `(r, c)` is `rhs[r·row_stride + c·col_stride]`.
    pub fn new(rhs: &'a [f32], k: usize, n: usize, row_stride: usize, col_stride: usize) -> Self {
        if k == 0 || n == 0 {
            return Self { values: Cow::Borrowed(&[]), k, n, row_stride: PANEL, panel_stride: 0 };
        }
        assert!(
            (k - 1) * row_stride + (n - 1) * col_stride < rhs.len(),
            "panel-matmul: rhs out of bounds"
        );
        // Read in place, a panel row is 8 consecutive values of a row of `rhs`, as in a copy; the
        // rows are farther apart, which measured no slower (the backward pass of `frozen_linear`,
        // saliency at 64 tokens in Chromium, medians of 12 runs: 815 and 857 ms in place, 865
        // and 791 ms copied: within this machine's spread) and saves the copy's memory.
        if reads_in_place(n, col_stride) {
            return Self { values: Cow::Borrowed(rhs), k, n, row_stride, panel_stride: PANEL };
        }
        let mut values = vec![0.0; n.div_ceil(PANEL) * k * PANEL];
        for (p, panel) in values.chunks_exact_mut(k * PANEL).enumerate() {
            let first = p * PANEL;
            // Each of the panel's columns is read along its run in `rhs` (a row of a transposed
            // matrix, or a column) and written every `PANEL` values.
            for c in 0..PANEL.min(n - first) {
                let column = (first + c) * col_stride;
                for (r, row) in panel.chunks_exact_mut(PANEL).enumerate() {
                    row[c] = rhs[column + r * row_stride];
                }
            }
        }
        Self { values: Cow::Owned(values), k, n, row_stride: PANEL, panel_stride: k * PANEL }
    }
}

/// `out[i·out_stride + c] = Σ_r lhs[i·lhs_stride + r] · rhs[r, c]` for `i < m`, `c < rhs.n`:
/// `out` is overwritten, or with `accumulate` added to.
///
/// # Safety
/// Rows `i < m` of `out`, `rhs.n` values each from `out + i·out_stride`, are writable and nothing
/// else reads or writes them during the call. (A pointer, not a slice: the callers' outputs are
/// blocks of columns of a matrix that other threads fill at the same time.)
pub unsafe fn multiply(
    out: *mut f32,
    out_stride: usize,
    lhs: &[f32],
    lhs_stride: usize,
    m: usize,
    rhs: &Panels,
    accumulate: bool,
) {
    let (k, n) = (rhs.k, rhs.n);
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if accumulate {
            return;
        }
        for i in 0..m {
            std::ptr::write_bytes(out.add(i * out_stride), 0, n);
        }
        return;
    }
    assert!((m - 1) * lhs_stride + k <= lhs.len(), "panel-matmul: lhs out of bounds");
    for p in 0..n.div_ceil(PANEL) {
        let first = p * PANEL;
        let cols = PANEL.min(n - first);
        let panel = rhs.values[p * rhs.panel_stride..].as_ptr();
        for i in (0..m).step_by(TILE_ROWS) {
            let tile = Tile {
                out: out.add(i * out_stride + first),
                out_stride,
                cols,
                lhs: lhs[i * lhs_stride..].as_ptr(),
                lhs_stride,
                k,
                accumulate,
            };
            // The assert above bounds every row `i..i + rows` of `lhs` (`k` values), the caller
            // every row of `out` (`cols` values from `first`), and `Panels::new` every panel's
            // `k` rows of `PANEL` values.
            match m - i {
                1 => tile.compute::<1>(panel, rhs.row_stride),
                2 => tile.compute::<2>(panel, rhs.row_stride),
                3 => tile.compute::<3>(panel, rhs.row_stride),
                _ => tile.compute::<TILE_ROWS>(panel, rhs.row_stride),
            }
        }
    }
}

/// One tile: rows of `out` and `lhs` from the pointers, `cols` columns of one panel.
struct Tile {
    out: *mut f32,
    out_stride: usize,
    cols: usize,
    lhs: *const f32,
    lhs_stride: usize,
    k: usize,
    /// Start from `out`'s values instead of zeros.
    accumulate: bool,
}

impl Tile {
    /// # Safety
    /// `ROWS` rows of `out` (`cols` values each) and of `lhs` (`k` values each) lie behind the
    /// pointers, and `k` rows of `PANEL` values, `row_stride` apart, behind `panel`.
    #[inline(always)]
    unsafe fn compute<const ROWS: usize>(&self, panel: *const f32, row_stride: usize) {
        let mut sums = [[lanes::zero(); 2]; ROWS];
        if self.accumulate {
            for (row, sum) in sums.iter_mut().enumerate() {
                let out = self.out.add(row * self.out_stride);
                *sum = match self.cols == PANEL {
                    true => [lanes::load(out), lanes::load(out.add(4))],
                    false => {
                        let mut values = [0.0; PANEL];
                        std::ptr::copy_nonoverlapping(out, values.as_mut_ptr(), self.cols);
                        [lanes::load(values.as_ptr()), lanes::load(values.as_ptr().add(4))]
                    }
                };
            }
        }
        for r in 0..self.k {
            let right = [
                lanes::load(panel.add(r * row_stride)),
                lanes::load(panel.add(r * row_stride + 4)),
            ];
            for (row, sum) in sums.iter_mut().enumerate() {
                let left = lanes::splat(*self.lhs.add(row * self.lhs_stride + r));
                sum[0] = lanes::mul_add(left, right[0], sum[0]);
                sum[1] = lanes::mul_add(left, right[1], sum[1]);
            }
        }
        for (row, sum) in sums.iter().enumerate() {
            let out = self.out.add(row * self.out_stride);
            if self.cols == PANEL {
                lanes::store(out, sum[0]);
                lanes::store(out.add(4), sum[1]);
            } else {
                let mut values = [0.0; PANEL];
                lanes::store(values.as_mut_ptr(), sum[0]);
                lanes::store(values.as_mut_ptr().add(4), sum[1]);
                std::ptr::copy_nonoverlapping(values.as_ptr(), out, self.cols);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::cpu::kernels::dense::kernel_check::{check, values};
    use crate::engine::runtime::random::SplitMix64;

    /// Every shape class: tails of rows (1–3 beyond whole tiles) and of columns (a partial last
    /// panel), k of 0 and 1, transposed and plain `rhs`, strided `lhs` and `out`, overwriting and
    /// adding to `out`.
    #[test]
    fn equals_the_plain_triple_loop() {
        let mut rng = SplitMix64::new(11);
        for (m, k, n) in [
            (1, 1, 1),
            (4, 8, 8),
            (5, 3, 9),
            (7, 0, 5),
            (3, 17, 16),
            (64, 40, 23),
            (9, 576, 12),
            (2, 5, 1),
            (1, 9, 16),
            (MIN_ROWS, 7, 10),
        ] {
            for transposed in [false, true] {
                let lhs_stride = k + 3;
                let lhs = values(m * lhs_stride, &mut rng);
                let rhs = values(k * n, &mut rng);
                // Element (r, c): plain `rhs` is k × n row-major, transposed is n × k row-major.
                let (row_stride, col_stride) = if transposed { (1, k) } else { (n, 1) };
                let packed = Panels::new(&rhs, k, n, row_stride, col_stride);
                let at = |r: usize, c: usize| rhs[r * row_stride + c * col_stride];
                check(
                    m,
                    k,
                    n,
                    &lhs,
                    lhs_stride,
                    at,
                    &format!("transposed={transposed}"),
                    |out, out_stride, accumulate| {
                        // SAFETY: `out` holds m rows of out_stride ≥ n values.
                        unsafe {
                            multiply(
                                out.as_mut_ptr(),
                                out_stride,
                                &lhs,
                                lhs_stride,
                                m,
                                &packed,
                                accumulate,
                            )
                        };
                    },
                );
            }
        }
    }
}

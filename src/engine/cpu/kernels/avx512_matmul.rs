//! The CLI's projections on CPUs with AVX-512, on a weight `W` (`rows × cols`: out × in) packed
//! into panels (`weights::pack`): panel `p` holds rows `16p..16p + 16` of `W` column by column.
//!
//! Why panels: in both products the 16 values of one panel column are one vector load, and the
//! values the next step needs lie right after them. Reading row-major `W` in place, a kernel had
//! to add up lanes (dot products) or step across rows; gemm copies ("packs") `W` on every call.
//! Measured on one thread over the default model's 30 layers (GFLOP/s, panels against the best
//! of gemm and the dot-product kernel this replaced): `x · Wᵀ` at 16 rows of `x` 57 against 46,
//! 64 rows 113 against 81, 256 rows 126 against 111; `dy · W` at 16 rows 64 against 43 (gemm),
//! 64 rows 106 against 96. Past [`MAX_GRADIENT_ROWS`] gemm's `dy · W` wins (256 rows: 112
//! against 80), so there the caller unpacks rows for it. In the CLI (2 threads, interleaved runs
//! in one sitting) the forward pass at 64 tokens went from 127–157 ms to 94–107 ms, saliency at
//! 16 tokens from 121 to 87 ms and at 64 from 256 to 201 ms; at 256 tokens and in integrated
//! gradients' batches the change was within this machine's noise.
//!
//! The CLI keeps decoded weights as panels (packed at load); weights kept encoded are packed a
//! block at a time, so both storages run the same kernels on the same values and agree bit for
//! bit.

use super::dense::ColumnBlocks;
use super::{row_blocks, COLUMN_UNIT};
use crate::engine::model::weights::{packed_len, QuantizedMatrix, PANEL};
use crate::engine::runtime::context::StopToken;
use crate::engine::runtime::parallel;
use std::arch::x86_64::*;
use std::ops::Range;

/// The most rows of `dy` for which [`add_gradient_product`] beats gemm.
pub const MAX_GRADIENT_ROWS: usize = 64;

/// `dy · W` by [`add_gradient_product`], on a CPU with AVX-512: the same groups and blocks of
/// `W` as `FrozenLinear`'s blocks of gemm products, as panels, and the same pieces (blocks of columns of the
/// result). The kernel's vectors run along the rows of `dy`, so each piece adds up its
/// columns of `dxᵀ` from `dyᵀ`, and writes them transposed once every block is done.
pub fn input_gradient(
    weight: &QuantizedMatrix,
    stop: &StopToken,
    dy: &[f32],
    n: usize,
) -> candle_core::Result<Vec<f32>> {
    let (inputs, outputs) = (weight.cols(), weight.rows());
    let width = n.div_ceil(PANEL) * PANEL;
    // dyᵀ: row j holds column j of dy, padded with zeros to `width`; a block of rows per piece.
    let mut dyt = vec![0.0f32; outputs * width];
    let per_piece = outputs.div_ceil(parallel::pieces()).max(1);
    parallel::map(
        stop,
        dyt.chunks_mut(per_piece * width).enumerate().collect(),
        |(b, rows): (usize, &mut [f32])| {
            for (at, row) in rows.chunks_exact_mut(width).enumerate() {
                for (i, value) in row.iter_mut().take(n).enumerate() {
                    *value = dy[i * outputs + b * per_piece + at];
                }
            }
        },
    )
    .map_err(candle_core::Error::wrap)?;
    let columns = parallel::split(0..inputs, parallel::pieces(), COLUMN_UNIT);
    let mut sums: Vec<(Range<usize>, Vec<f32>)> =
        columns.into_iter().map(|c| (c.clone(), vec![0.0; c.len() * width])).collect();
    for group in weight.row_groups() {
        let blocks = row_blocks(stop, group, PANEL, |rows| {
            weight.panels(rows).map_err(candle_core::Error::wrap)
        })?;
        sums = parallel::map(stop, sums, |(columns, mut dxt)| {
            for (rows, w) in &blocks {
                // SAFETY: the caller checked that the CPU has AVX-512 (`available`).
                unsafe {
                    add_gradient_product(
                        &mut dxt,
                        width,
                        columns.clone(),
                        &dyt[rows.start * width..],
                        w,
                        rows.len(),
                        inputs,
                    )
                };
            }
            (columns, dxt)
        })
        .map_err(candle_core::Error::wrap)?;
    }
    let mut grad = vec![0.0f32; n * inputs];
    let out = ColumnBlocks::new(&mut grad, n, inputs);
    parallel::map(stop, sums, |(columns, dxt)| {
        let out = out.columns(columns.clone());
        for i in 0..n {
            // SAFETY: row i of this piece's own columns (`ColumnBlocks::columns`).
            let row = unsafe {
                std::slice::from_raw_parts_mut(out.first.add(i * out.row_stride), out.cols)
            };
            for (u, value) in row.iter_mut().enumerate() {
                *value = dxt[u * width + i];
            }
        }
    })
    .map_err(candle_core::Error::wrap)?;
    Ok(grad)
}

/// Whether this CPU runs these kernels (checked once by the standard library, then cached).
pub fn available() -> bool {
    is_x86_feature_detected!("avx512f")
}

/// Columns of `x` (the shared dimension) per pass over the tiles: a tile's two panels' columns
/// then take 32 KiB, which stay in the L1 cache while every row of `x` passes.
const DEPTH_BLOCK: usize = 256;

/// `out (m × n) = x (m × k) · Wᵀ`, `W` the `n × k` weight in `panels`: row `i` of the result at
/// `out + i·out_stride`, row `i` of `x` at `x[i·x_stride..]`. A tile is 8 rows of `x` by 2
/// panels: per column of `x`, 2 vector loads of `W` and 8 broadcasts feed 16 fused
/// multiply-adds into 16 sums kept in registers.
///
/// # Safety
/// [`available`] is true, and rows `i < m` of `out`, `n` values each from `out + i·out_stride`,
/// are writable and nothing else reads or writes them during the call.
#[allow(clippy::too_many_arguments)] // a product's operands, shape and strides, as BLAS takes them
#[target_feature(enable = "avx512f")]
pub unsafe fn multiply(
    out: *mut f32,
    out_stride: usize,
    x: &[f32],
    x_stride: usize,
    m: usize,
    panels: &[f32],
    n: usize,
    k: usize,
) {
    if m == 0 || n == 0 {
        return;
    }
    assert!((m - 1) * x_stride + k <= x.len(), "avx512-matmul: x out of bounds");
    assert!(panels.len() >= packed_len(n, k), "avx512-matmul: panels out of bounds");
    if k == 0 {
        for i in 0..m {
            std::ptr::write_bytes(out.add(i * out_stride), 0, n);
        }
        return;
    }
    let panel_count = n.div_ceil(PANEL);
    for depth in (0..k).step_by(DEPTH_BLOCK) {
        let depth = depth..(depth + DEPTH_BLOCK).min(k);
        let first = depth.start == 0;
        for p in (0..panel_count).step_by(2) {
            let columns = n - p * PANEL;
            let mut i = 0;
            while i < m {
                let tile = Tile {
                    out: out.add(i * out_stride + p * PANEL),
                    out_stride,
                    x: x.as_ptr().add(i * x_stride),
                    x_stride,
                    panels: panels.as_ptr().add(p * PANEL * k),
                    k,
                    columns,
                };
                i += match (m - i, p + 1 < panel_count) {
                    (8.., true) => tile.run::<8, 2>(depth.clone(), first),
                    (8.., false) => tile.run::<8, 1>(depth.clone(), first),
                    (4.., true) => tile.run::<4, 2>(depth.clone(), first),
                    (4.., false) => tile.run::<4, 1>(depth.clone(), first),
                    (_, true) => tile.run::<1, 2>(depth.clone(), first),
                    (_, false) => tile.run::<1, 1>(depth.clone(), first),
                };
            }
        }
    }
}

/// One tile of [`multiply`]: rows of `x` from `x`, panels from `panels`, `columns` of the result
/// left from its first (the last panel's rows past `n` are not stored).
struct Tile {
    out: *mut f32,
    out_stride: usize,
    x: *const f32,
    x_stride: usize,
    panels: *const f32,
    k: usize,
    columns: usize,
}

impl Tile {
    /// Adds `ROWS × PANELS·16` products over the columns `depth` of `x` (stores them if `first`);
    /// returns `ROWS`.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn run<const ROWS: usize, const PANELS: usize>(
        &self,
        depth: Range<usize>,
        first: bool,
    ) -> usize {
        let mut sums = [[_mm512_setzero_ps(); PANELS]; ROWS];
        for c in depth {
            let mut w = [_mm512_setzero_ps(); PANELS];
            for (v, lanes) in w.iter_mut().enumerate() {
                *lanes = _mm512_loadu_ps(self.panels.add((v * self.k + c) * PANEL));
            }
            for (i, row_sums) in sums.iter_mut().enumerate() {
                let xi = _mm512_set1_ps(*self.x.add(i * self.x_stride + c));
                for (sum, &lanes) in row_sums.iter_mut().zip(&w) {
                    *sum = _mm512_fmadd_ps(xi, lanes, *sum);
                }
            }
        }
        for (i, row_sums) in sums.iter().enumerate() {
            for (v, &sum) in row_sums.iter().enumerate() {
                let mask = lane_mask(self.columns.saturating_sub(v * PANEL));
                let at = self.out.add(i * self.out_stride + v * PANEL);
                let total =
                    if first { sum } else { _mm512_add_ps(sum, _mm512_maskz_loadu_ps(mask, at)) };
                _mm512_mask_storeu_ps(at, mask, total);
            }
        }
        ROWS
    }
}

/// Rows of `W` per pass over the tiles of [`add_gradient_product`]: their rows of `dyᵀ` (at 64
/// rows of `dy`, 32 KiB) stay in the L1 cache while every column passes.
const GRADIENT_BLOCK: usize = 128;

/// `dxᵀ += Wᵀ · dyᵀ` over a block of `W`'s rows: `dxt[c·width + i] += Σ_j W[j][columns.start + c] ·
/// dyt[j·width + i]` for every `c < columns.len()`, `i < width`, and `j < rows`, `W`'s rows being
/// the `rows` in `panels` (`cols` columns) and `dyt` holding `dyᵀ`'s matching rows of `width`
/// values (a multiple of 16, `dy`'s rows padded with zeros). The gradient `dy · W` transposed:
/// vectors run along the rows of `dy`, which `dyᵀ` makes contiguous. A tile of 6 columns by 64
/// rows of `dy` (or 8 by 32 or 16) takes, per row of `W`, 4 vector loads of `dyᵀ` and 6
/// broadcasts of `W` for 24 fused multiply-adds.
///
/// # Safety
/// [`available`] is true.
#[target_feature(enable = "avx512f")]
pub unsafe fn add_gradient_product(
    dxt: &mut [f32],
    width: usize,
    columns: Range<usize>,
    dyt: &[f32],
    panels: &[f32],
    rows: usize,
    cols: usize,
) {
    assert!(width.is_multiple_of(PANEL) && columns.end <= cols, "avx512-matmul: gradient operands");
    assert!(
        dxt.len() >= columns.len() * width && dyt.len() >= rows * width,
        "avx512-matmul: gradient out of bounds"
    );
    assert!(panels.len() >= packed_len(rows, cols), "avx512-matmul: panels out of bounds");
    if columns.is_empty() {
        return;
    }
    for block in (0..rows).step_by(GRADIENT_BLOCK) {
        let block = block..(block + GRADIENT_BLOCK).min(rows);
        let mut i = 0;
        while i < width {
            let mut c = columns.start;
            while c < columns.end {
                let tile = GradientTile {
                    dxt: dxt.as_mut_ptr().add((c - columns.start) * width + i),
                    width,
                    dyt: dyt.as_ptr().add(i),
                    panels: panels.as_ptr().add(c * PANEL),
                    cols,
                    columns: columns.end - c,
                };
                c += match width - i {
                    64.. => tile.run::<6, 4>(block.clone()),
                    32.. => tile.run::<8, 2>(block.clone()),
                    _ => tile.run::<8, 1>(block.clone()),
                };
            }
            i += match width - i {
                64.. => 64,
                32.. => 32,
                _ => 16,
            };
        }
    }
}

/// One tile of [`add_gradient_product`]: `dxt` and `dyt` at the tile's first row of `dy`,
/// `panels` at its first column, `columns` left from there (a column past them is computed from
/// the last again and not stored).
struct GradientTile {
    dxt: *mut f32,
    width: usize,
    dyt: *const f32,
    panels: *const f32,
    cols: usize,
    columns: usize,
}

impl GradientTile {
    /// Adds the tile's sums over `W`'s rows `block`; returns `COLUMNS`.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn run<const COLUMNS: usize, const VECTORS: usize>(&self, block: Range<usize>) -> usize {
        let mut sums = [[_mm512_setzero_ps(); VECTORS]; COLUMNS];
        let offsets: [usize; COLUMNS] = std::array::from_fn(|u| u.min(self.columns - 1) * PANEL);
        for j in block {
            let w = self.panels.add(j / PANEL * PANEL * self.cols + j % PANEL);
            let mut dy = [_mm512_setzero_ps(); VECTORS];
            for (t, lanes) in dy.iter_mut().enumerate() {
                *lanes = _mm512_loadu_ps(self.dyt.add(j * self.width + t * PANEL));
            }
            for (column_sums, &offset) in sums.iter_mut().zip(&offsets) {
                let wj = _mm512_set1_ps(*w.add(offset));
                for (sum, &lanes) in column_sums.iter_mut().zip(&dy) {
                    *sum = _mm512_fmadd_ps(wj, lanes, *sum);
                }
            }
        }
        for (u, column_sums) in sums.iter().enumerate().take(self.columns) {
            for (t, &sum) in column_sums.iter().enumerate() {
                let at = self.dxt.add(u * self.width + t * PANEL);
                _mm512_storeu_ps(at, _mm512_add_ps(_mm512_loadu_ps(at), sum));
            }
        }
        COLUMNS
    }
}

/// The first `count` lanes (all 16 from 16 on).
#[inline]
fn lane_mask(count: usize) -> __mmask16 {
    match count >= PANEL {
        true => !0,
        false => ((1u32 << count) - 1) as __mmask16,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::cpu::kernels::dense::kernel_check::{check, skip, values};
    use crate::engine::model::weights::pack;
    use crate::engine::runtime::random::SplitMix64;

    /// The shapes: tile edges in rows and columns (1–3 beyond whole tiles or panels), `k` of 0, 1
    /// and past a depth block, a strided `x`, overwriting and adding to `out`.
    const SHAPES: [(usize, usize, usize); 10] = [
        (1, 1, 1),
        (4, 16, 4),
        (5, 3, 9),
        (7, 0, 5),
        (9, 17, 33),
        (64, 40, 23),
        (13, 576, 48),
        (2, 31, 1),
        (1, 300, 70),
        (70, 130, 150),
    ];

    #[test]
    fn products_equal_the_plain_triple_loop() {
        if !available() {
            return skip(
                "avx512_matmul products",
                "no AVX-512 on this CPU: the kernel is not used",
            );
        }
        let mut rng = SplitMix64::new(5);
        for (m, k, n) in SHAPES {
            let x_stride = k + 3;
            let x = values(m * x_stride, &mut rng);
            let w = values(n * k, &mut rng);
            let panels = pack(&w, n, k);
            check(
                m,
                k,
                n,
                &x,
                x_stride,
                |r, c| w[c * k + r],
                "x·Wᵀ",
                |out, out_stride, accumulate| {
                    // `multiply` overwrites: adding is the caller's, so check it by adding here.
                    let before = out.to_vec();
                    // SAFETY: checked available above; `out` holds m rows of out_stride ≥ n values.
                    unsafe {
                        multiply(out.as_mut_ptr(), out_stride, &x, x_stride, m, &panels, n, k)
                    };
                    if accumulate {
                        for (o, b) in out.iter_mut().zip(before) {
                            *o += if b.is_nan() { 0.0 } else { b };
                        }
                    }
                },
            );
        }
    }

    /// `dy · W` through [`add_gradient_product`] (in `dxᵀ`, a block of columns at a time) equals
    /// the plain sums, for `dy`'s rows filling 1, 2 and 4 vectors and beyond, and `W`'s rows past
    /// a block.
    #[test]
    fn gradients_equal_the_plain_triple_loop() {
        if !available() {
            return skip(
                "avx512_matmul gradients",
                "no AVX-512 on this CPU: the kernel is not used",
            );
        }
        let mut rng = SplitMix64::new(6);
        for (m, k, n) in SHAPES.into_iter().chain([(100, 7, 300), (33, 20, 16)]) {
            let (rows, cols) = (k, n);
            let width = m.div_ceil(PANEL) * PANEL;
            let dy = values(m * rows, &mut rng);
            let w = values(rows * cols, &mut rng);
            let panels = pack(&w, rows, cols);
            let mut dyt = vec![0.0; rows * width];
            for (i, row) in dy.chunks_exact(rows.max(1)).enumerate().take(m) {
                for (j, &v) in row.iter().enumerate() {
                    dyt[j * width + i] = v;
                }
            }
            check(
                m,
                rows,
                cols,
                &dy,
                rows,
                |r, c| w[r * cols + c],
                "dy·W",
                |out, out_stride, accumulate| {
                    for columns in [0..cols / 3, cols / 3..cols] {
                        let mut dxt = vec![0.0; columns.len() * width];
                        // SAFETY: checked available above.
                        unsafe {
                            add_gradient_product(
                                &mut dxt,
                                width,
                                columns.clone(),
                                &dyt,
                                &panels,
                                rows,
                                cols,
                            )
                        };
                        for i in 0..m {
                            for (u, c) in columns.clone().enumerate() {
                                let o = &mut out[i * out_stride + c];
                                *o = dxt[u * width + i] + if accumulate { *o } else { 0.0 };
                            }
                        }
                    }
                },
            );
        }
    }
}

//! `y = x · Wᵀ` with a frozen, quantized `W`, as a candle op whose backward gives the input
//! gradient `dy · W` and nothing else: no weight gradient is computed and no dense copy of `W`
//! outlives the call (candle's own matmul backward would do both).
//!
//! Each product is split into the pieces of `engine::parallel::map`s (`parallel::pieces` per
//! map), each on one thread: the engine decides how work is split across threads, and no piece is
//! split again underneath. In `x · Wᵀ` each piece dequantizes a block of rows of `W` and writes
//! its block of columns of the result. In `dy · W` the rows of `W` are dequantized in blocks by
//! one map, then each piece of a second map writes a block of columns of the result, over every
//! row of `W`. A piece multiplies with `gemm` (the kernels behind candle's matmul), called
//! directly, in the page with our own 128-bit kernel (`panel_matmul`), or natively on CPUs with
//! AVX-512 with our kernels on `W` as panels (`avx512_matmul`). The weight's largest
//! matrices (the vocabulary's) are taken a group of rows at a time (`QuantizedMatrix::row_groups`),
//! which bounds the dequantized values alive at once.

#[cfg(target_arch = "x86_64")]
use crate::engine::cpu::kernels::avx512_matmul;
use crate::engine::cpu::kernels::dense::{gemm_multiply, Matrix, Output};
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
use crate::engine::cpu::kernels::panel_matmul;
use crate::engine::cpu::ops::custom_op::contiguous_range;
use crate::engine::error::Result;
use crate::engine::model::weights::{QuantizedMatrix, PANEL};
use crate::engine::runtime::context::StopToken;
use crate::engine::runtime::parallel;
use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor, WithDType};
use std::borrow::Cow;
use std::marker::PhantomData;
use std::ops::Range;

#[derive(Clone)]
pub struct FrozenLinear {
    weight: QuantizedMatrix,
    /// The run's stop token: every product's maps check it.
    stop: StopToken,
}

impl FrozenLinear {
    pub fn new(weight: QuantizedMatrix, stop: StopToken) -> Self {
        Self { weight, stop }
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
        let outputs = self.out_features();
        let mut y = vec![T::zero(); n * outputs];
        let out = ColumnBlocks::new(&mut y, n, outputs);
        let blocks = self
            .weight
            .row_groups()
            .flat_map(|group| parallel::split(group, parallel::pieces(), COLUMN_UNIT))
            .collect();
        let pieces = parallel::map(&self.stop, blocks, |rows: Range<usize>| {
            T::forward_block(&self.weight, out.columns(rows.clone()), x, rows)
        });
        pieces
            .map_err(candle_core::Error::wrap)?
            .into_iter()
            .collect::<candle_core::Result<()>>()?;
        Ok(y)
    }

    /// `dy · W` for `n` row-major rows `dy` of `out` values: `n × in` values. A group of rows of
    /// `W` at a time is dequantized, a block of rows per thread; then each piece takes a
    /// block of columns of the result and adds up its products with every block over the whole
    /// group. (Splitting the rows of `W` alone, the pieces' whole-width partial products had to
    /// be added up on one thread while the others waited, and each piece's products had as few
    /// as out/8 terms.)
    fn input_gradient<T: Element>(&self, dy: &[T], n: usize) -> candle_core::Result<Vec<T>> {
        let (inputs, outputs) = (self.in_features(), self.out_features());
        let mut grad = vec![T::zero(); n * inputs];
        let out = ColumnBlocks::new(&mut grad, n, inputs);
        for (g, group) in self.weight.row_groups().enumerate() {
            // One block per thread, not per piece: each piece multiplies by every block, and gemm
            // (a short text's products) pays a fixed cost per call (measured: saliency at 16
            // tokens 558-562 ms against 607-629 ms with a block per piece).
            let blocks = row_blocks(&self.stop, group, 1, |rows| dequantized(&self.weight, rows))?;
            let columns = parallel::split(0..inputs, parallel::pieces(), COLUMN_UNIT);
            parallel::map(&self.stop, columns, |columns: Range<usize>| {
                for (b, (rows, w)) in blocks.iter().enumerate() {
                    // grad[:, columns] (+)= dy[:, rows] (n × len) · w_block[:, columns] (len × width).
                    let lhs =
                        Matrix { values: &dy[rows.start..], row_stride: outputs, col_stride: 1 };
                    let rhs =
                        Matrix { values: &w[columns.start..], row_stride: inputs, col_stride: 1 };
                    T::multiply(
                        out.columns(columns.clone()),
                        lhs,
                        rhs,
                        n,
                        columns.len(),
                        rows.len(),
                        g > 0 || b > 0,
                    );
                }
            })
            .map_err(candle_core::Error::wrap)?;
        }
        Ok(grad)
    }

    /// `dy · W` in f32: by the AVX-512 kernel where the CPU has it and `dy` is short enough for it
    /// to beat gemm, else [`Self::input_gradient`].
    fn f32_input_gradient(&self, dy: &[f32], n: usize) -> candle_core::Result<Vec<f32>> {
        #[cfg(target_arch = "x86_64")]
        if (1..=avx512_matmul::MAX_GRADIENT_ROWS).contains(&n) && avx512_matmul::available() {
            return self.panel_input_gradient(dy, n);
        }
        self.input_gradient(dy, n)
    }

    /// `dy · W` by the AVX-512 kernel: the same groups and blocks of `W` as
    /// [`Self::input_gradient`], as panels, and the same pieces (blocks of columns of the
    /// result). The kernel's vectors run along the rows of `dy`, so each piece adds up its
    /// columns of `dxᵀ` from `dyᵀ`, and writes them transposed once every block is done.
    #[cfg(target_arch = "x86_64")]
    fn panel_input_gradient(&self, dy: &[f32], n: usize) -> candle_core::Result<Vec<f32>> {
        let (inputs, outputs) = (self.in_features(), self.out_features());
        let width = n.div_ceil(PANEL) * PANEL;
        // dyᵀ: row j holds column j of dy, padded with zeros to `width`; a block of rows per piece.
        let mut dyt = vec![0.0f32; outputs * width];
        let per_piece = outputs.div_ceil(parallel::pieces()).max(1);
        parallel::map(
            &self.stop,
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
        for group in self.weight.row_groups() {
            let blocks = row_blocks(&self.stop, group, PANEL, |rows| {
                self.weight.panels(rows).map_err(candle_core::Error::wrap)
            })?;
            sums = parallel::map(&self.stop, sums, |(columns, mut dxt)| {
                for (rows, w) in &blocks {
                    // SAFETY: the caller checked that the CPU has AVX-512.
                    unsafe {
                        avx512_matmul::add_gradient_product(
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
        parallel::map(&self.stop, sums, |(columns, dxt)| {
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
}

/// A piece's columns of the result (of `x · Wᵀ` or `dy · W`) come in multiples of the kernels'
/// panel width (the page's 8, the CLI's 16), so that no panel but the result's last is cut short.
const COLUMN_UNIT: usize = if cfg!(target_arch = "wasm32") { 8 } else { PANEL };

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
        assert!(
            range.start <= range.end && range.end <= self.cols,
            "frozen-linear: columns out of bounds"
        );
        Output {
            first: self.values.wrapping_add(range.start),
            row_stride: self.cols,
            rows: self.rows,
            cols: range.len(),
            _borrow: PhantomData,
        }
    }
}

/// The precisions the op computes in: f32 (the page and the CLI), f64 (gradient checks).
trait Element: WithDType {
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
}

/// A group of `W`'s rows cut into one block per thread (whole `unit`s), each fetched by `fetch`
/// (dequantized, borrowed or packed) on its thread: the blocks every piece of `dy · W` reads.
fn row_blocks<B: Send>(
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
fn dequantized<T: Element>(
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
}

impl Element for f64 {
    fn from_f32s(values: Cow<'_, [f32]>) -> Cow<'_, [Self]> {
        Cow::Owned(values.iter().map(|&v| f64::from(v)).collect())
    }
}

impl CustomOp1 for FrozenLinear {
    fn name(&self) -> &'static str {
        "frozen-linear"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (range, n, shape) = rows(self.name(), layout, self.in_features(), self.out_features())?;
        let out = match storage {
            CpuStorage::F32(v) => CpuStorage::F32(self.product(&v[range], n)?),
            CpuStorage::F64(v) => CpuStorage::F64(self.product(&v[range], n)?),
            _ => candle_core::bail!("frozen-linear: only f32 and f64 inputs are supported"),
        };
        Ok((out, shape))
    }

    fn bwd(
        &self,
        arg: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let grad = grad_res.contiguous()?.apply_op1_no_bwd(&InputGradient(self))?;
        Ok(Some(grad.reshape(arg.shape())?))
    }
}

/// The backward pass's op: `dy` `(..., out)` → `dy · W` `(..., in)`, read and written in place.
struct InputGradient<'a>(&'a FrozenLinear);

impl CustomOp1 for InputGradient<'_> {
    fn name(&self) -> &'static str {
        "frozen-linear-input-gradient"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let linear = self.0;
        let (range, n, shape) =
            rows(self.name(), layout, linear.out_features(), linear.in_features())?;
        let grad = match storage {
            CpuStorage::F32(v) => CpuStorage::F32(linear.f32_input_gradient(&v[range], n)?),
            CpuStorage::F64(v) => CpuStorage::F64(linear.input_gradient(&v[range], n)?),
            _ => candle_core::bail!("frozen-linear: only f32 and f64 gradients are supported"),
        };
        Ok((grad, shape))
    }
}

/// An operand `(..., width)` as `n` rows: where its values lie, `n`, and the shape of the `n` rows
/// of `out_width` values the op returns.
fn rows(
    op: &str,
    layout: &Layout,
    width: usize,
    out_width: usize,
) -> candle_core::Result<(Range<usize>, usize, Shape)> {
    let dims = layout.shape().dims();
    let (&last, batch_dims) = dims
        .split_last()
        .ok_or_else(|| candle_core::Error::Msg(format!("{op}: scalar operand")))?;
    if last != width {
        candle_core::bail!("{op}: the operand has {last} features, the weight takes {width}");
    }
    let mut out_dims = batch_dims.to_vec();
    out_dims.push(out_width);
    Ok((contiguous_range(op, layout)?, batch_dims.iter().product(), Shape::from(out_dims)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::model::weights::WeightStorage;
    use crate::engine::runtime::random::SplitMix64;
    use candle_core::quantized::GgmlDType;
    use candle_core::{DType, Device};
    use std::sync::Arc;

    fn values(count: usize, rng: &mut SplitMix64) -> Vec<f64> {
        (0..count).map(|_| (rng.next_u64() % 2001) as f64 / 1000.0 - 1.0).collect()
    }

    /// A `rows × cols` weight stored as F32 (its values exact in f64 too), and its values.
    fn weight(rows: usize, cols: usize, rng: &mut SplitMix64) -> (FrozenLinear, Vec<f64>) {
        let w = values(rows * cols, rng);
        let bytes = w.iter().flat_map(|&v| (v as f32).to_le_bytes()).collect();
        let matrix = QuantizedMatrix::new(Arc::new(bytes), 0, GgmlDType::F32, rows, cols).unwrap();
        (
            FrozenLinear::new(matrix, Default::default()),
            w.iter().map(|&v| v as f32 as f64).collect(),
        )
    }

    /// Within `tolerance` of the largest |want|: f64 sums differ from the plain loop's by a few
    /// ulps, f32 ones by about the f32 rounding of each term.
    fn close(got: &[f64], want: &[f64], tolerance: f64, what: &str) {
        assert_eq!(got.len(), want.len(), "{what}");
        let scale = want.iter().fold(1.0f64, |m, v| m.max(v.abs()));
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!((g - w).abs() <= tolerance * scale, "{what}[{i}]: {g} vs {w}");
        }
    }

    /// `x · Wᵀ` and `dy · W` equal the plain sums, in f64 and in f32 (natively on AVX-512 CPUs, the
    /// panel kernels: `dy` of up to 64 rows, and past them gemm on unpacked rows), with the weight
    /// kept encoded and decoded, for weights with fewer rows than pieces, more, and more than
    /// one row group (the last is over 16 MiB as f32: two groups).
    #[test]
    fn products_equal_the_plain_sums() {
        let mut rng = SplitMix64::new(3);
        for (rows, cols, n) in [
            (3, 32, 2),
            (40, 64, 5),
            (576, 96, 33),
            (50, 40, 70),
            ((16 << 20) / (32 * 4) + 9, 32, 2),
        ] {
            let (linear, w) = weight(rows, cols, &mut rng);
            let x = values(n * cols, &mut rng);
            let dy = values(n * rows, &mut rng);
            let want_y: Vec<f64> = (0..n * rows)
                .map(|at| {
                    (0..cols).map(|c| x[at / rows * cols + c] * w[at % rows * cols + c]).sum()
                })
                .collect();
            let want_grad: Vec<f64> = (0..n * cols)
                .map(|at| {
                    (0..rows).map(|r| dy[at / cols * rows + r] * w[r * cols + at % cols]).sum()
                })
                .collect();
            for storage in WeightStorage::ALL {
                let linear = FrozenLinear::new(
                    linear.weight.clone().stored(storage).unwrap(),
                    Default::default(),
                );
                for (dtype, tolerance) in
                    [(DType::F64, 1e-12), (DType::F32, 1e-6 * (rows.max(cols) as f64).sqrt())]
                {
                    let what = format!("{rows}×{cols}, {n} rows, {storage:?}, {dtype:?}");
                    let input = |values: &[f64], width: usize| {
                        Tensor::from_vec(values.to_vec(), (n, width), &Device::Cpu)
                            .unwrap()
                            .to_dtype(dtype)
                            .unwrap()
                    };
                    let as_f64 = |t: Tensor| {
                        t.to_dtype(DType::F64)
                            .unwrap()
                            .flatten_all()
                            .unwrap()
                            .to_vec1::<f64>()
                            .unwrap()
                    };
                    let y = input(&x, cols).apply_op1(linear.clone()).unwrap();
                    assert_eq!(y.dims(), [n, rows]);
                    close(&as_f64(y), &want_y, tolerance, &format!("{what}: x·Wᵀ"));
                    let grad = input(&dy, rows).apply_op1_no_bwd(&InputGradient(&linear)).unwrap();
                    assert_eq!(grad.dims(), [n, cols]);
                    close(&as_f64(grad), &want_grad, tolerance, &format!("{what}: dy·W"));
                }
            }
        }
    }
}

//! `y = x · Wᵀ` with a frozen, quantized `W`, as a candle op whose backward gives the input
//! gradient `dy · W` and nothing else: no weight gradient is computed and no dense copy of `W`
//! outlives the call (candle's own matmul backward would do both).
//!
//! Each product is split into the pieces of `engine::parallel::map`s (`parallel::pieces` per
//! map), each on one thread: the engine decides how work is split across threads, and no piece is
//! split again underneath. In `x · Wᵀ` each piece dequantizes a block of rows of `W` and writes
//! its block of columns of the result. In `dy · W` the rows of `W` are dequantized in blocks by
//! one map, then each piece of a second map writes a block of columns of the result, over every
//! row of `W`. Which kernel multiplies a piece is the kernels' choice (`kernels::Element`). The
//! weight's largest
//! matrices (the vocabulary's) are taken a group of rows at a time (`QuantizedMatrix::row_groups`),
//! which bounds the dequantized values alive at once.

use crate::engine::cpu::kernels::dense::{ColumnBlocks, Matrix};
use crate::engine::cpu::kernels::{dequantized, row_blocks, Element, COLUMN_UNIT};
use crate::engine::cpu::ops::custom_op::contiguous_range;
use crate::engine::error::Result;
use crate::engine::model::weights::QuantizedMatrix;
use crate::engine::runtime::context::StopToken;
use crate::engine::runtime::parallel;
use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor};
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
        if let Some(gradient) = T::whole_input_gradient(&self.weight, &self.stop, dy, n) {
            return gradient;
        }
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
            CpuStorage::F32(v) => CpuStorage::F32(linear.input_gradient(&v[range], n)?),
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

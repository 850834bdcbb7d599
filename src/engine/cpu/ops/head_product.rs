//! Attention's per-head matrix products, `q · kᵀ` and `probs · v`, as one op with an analytic
//! backward: each head's product is one piece of a map over the pool, and each key/value head is
//! read in place by the query heads of its group. candle's batched matmul multiplied the heads one
//! after another on the request's thread while the others waited, after copying each key/value
//! head once per query head reading it.

use crate::engine::cpu::kernels::dense::{gemm_multiply, Matrix, Output};
use crate::engine::cpu::ops::custom_op::contiguous_range;
use crate::engine::error::Result;
use crate::engine::runtime::context::StopToken;
use crate::engine::runtime::parallel;
use candle_core::{CpuStorage, CustomOp2, Layout, Shape, Tensor, WithDType};

/// `q · kᵀ` per head: `q` `(batch, heads, seq, hd)`, `k` `(batch, kv_heads, seq, hd)` →
/// `(batch, heads, seq, seq)`; query head `h` reads key head `h / (heads / kv_heads)`.
pub fn scores(stop: &StopToken, q: &Tensor, k: &Tensor) -> Result<Tensor> {
    Ok(q.contiguous()?.apply_op2(
        &k.contiguous()?,
        HeadProduct {
            transpose_left: false,
            transpose_right: true,
            heads: Heads::Spread,
            stop: stop.clone(),
        },
    )?)
}

/// `probs · v` per head: `probs` `(batch, heads, seq, seq)`, `v` `(batch, kv_heads, seq, hd)` →
/// `(batch, heads, seq, hd)`, grouped as in [`scores`].
pub fn mix(stop: &StopToken, probs: &Tensor, v: &Tensor) -> Result<Tensor> {
    Ok(probs.contiguous()?.apply_op2(
        &v.contiguous()?,
        HeadProduct {
            transpose_left: false,
            transpose_right: false,
            heads: Heads::Spread,
            stop: stop.clone(),
        },
    )?)
}

/// `op(left head) · op(right head)`, `op` a transpose where asked.
#[derive(Clone)]
struct HeadProduct {
    transpose_left: bool,
    transpose_right: bool,
    heads: Heads,
    stop: StopToken,
}

/// Which heads meet.
#[derive(Clone, Copy)]
enum Heads {
    /// Each left head with its group's right head (`left heads / right heads` left heads per
    /// group): the output has the left's heads.
    Spread,
    /// Each group of `left heads / groups` consecutive heads, left with right, the products summed
    /// (how gradients reach a key/value head from its group): the output has `groups` heads.
    Sum { groups: usize },
}

/// One operand's heads: `(batch, heads, rows, cols)` contiguous values.
struct Operand<'a, T> {
    values: &'a [T],
    heads: usize,
    rows: usize,
    cols: usize,
    transpose: bool,
}

impl<T> Operand<'_, T> {
    /// Head `head` (counting over the batch) as the product's matrix: `rows × cols` or transposed.
    fn head(&self, head: usize) -> Matrix<'_, T> {
        let size = self.rows * self.cols;
        let values = &self.values[head * size..(head + 1) * size];
        match self.transpose {
            false => Matrix { values, row_stride: self.cols, col_stride: 1 },
            true => Matrix { values, row_stride: 1, col_stride: self.cols },
        }
    }

    /// `(rows, cols)` of the product's matrix.
    fn shape(&self) -> (usize, usize) {
        match self.transpose {
            false => (self.rows, self.cols),
            true => (self.cols, self.rows),
        }
    }
}

impl HeadProduct {
    fn operand<'a, T>(
        values: &'a [T],
        layout: &Layout,
        transpose: bool,
    ) -> candle_core::Result<Operand<'a, T>> {
        let (batch, heads, rows, cols) = layout.shape().dims4()?;
        let range = contiguous_range("head-product", layout)?;
        if range.len() != batch * heads * rows * cols {
            candle_core::bail!("head-product: operand size");
        }
        Ok(Operand { values: &values[range], heads, rows, cols, transpose })
    }

    fn product<T: WithDType>(
        &self,
        left: &[T],
        left_layout: &Layout,
        right: &[T],
        right_layout: &Layout,
    ) -> candle_core::Result<(Vec<T>, Shape)> {
        let batch = left_layout.shape().dims4()?.0;
        if right_layout.shape().dims4()?.0 != batch {
            candle_core::bail!("head-product: batches differ");
        }
        let (left, right) = (
            Self::operand(left, left_layout, self.transpose_left)?,
            Self::operand(right, right_layout, self.transpose_right)?,
        );
        let ((m, k), (k_right, n)) = (left.shape(), right.shape());
        let out_heads = match self.heads {
            Heads::Spread if right.heads > 0 && left.heads % right.heads == 0 => left.heads,
            Heads::Sum { groups }
                if groups > 0 && left.heads == right.heads && left.heads % groups == 0 =>
            {
                groups
            }
            _ => candle_core::bail!(
                "head-product: {} left heads do not group with {} right heads",
                left.heads,
                right.heads
            ),
        };
        if k != k_right {
            candle_core::bail!(
                "head-product: heads of {m} × {k} and {k_right} × {n} do not multiply"
            );
        }
        let mut out = vec![T::zero(); batch * out_heads * m * n];
        let pieces = out.chunks_mut((m * n).max(1)).enumerate().collect();
        parallel::map(&self.stop, pieces, |(index, out): (usize, &mut [T])| {
            let (b, head) = (index / out_heads, index % out_heads);
            // Which (left head, right head) pairs make this output head, counting over the batch.
            let pairs: Vec<(usize, usize)> = match self.heads {
                Heads::Spread => vec![(
                    b * left.heads + head,
                    b * right.heads + head / (left.heads / right.heads),
                )],
                Heads::Sum { groups } => {
                    let size = left.heads / groups;
                    (head * size..(head + 1) * size)
                        .map(|h| (b * left.heads + h, b * right.heads + h))
                        .collect()
                }
            };
            for (i, &(l, r)) in pairs.iter().enumerate() {
                gemm_multiply(
                    Output::of_slice(out, m, n),
                    left.head(l),
                    right.head(r),
                    m,
                    n,
                    k,
                    i > 0,
                );
            }
        })
        .map_err(candle_core::Error::wrap)?;
        Ok((out, Shape::from((batch, out_heads, m, n))))
    }
}

impl CustomOp2 for HeadProduct {
    fn name(&self) -> &'static str {
        "head-product"
    }

    fn cpu_fwd(
        &self,
        left: &CpuStorage,
        left_layout: &Layout,
        right: &CpuStorage,
        right_layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        Ok(match (left, right) {
            (CpuStorage::F32(l), CpuStorage::F32(r)) => {
                let (out, shape) = self.product(l, left_layout, r, right_layout)?;
                (CpuStorage::F32(out), shape)
            }
            (CpuStorage::F64(l), CpuStorage::F64(r)) => {
                let (out, shape) = self.product(l, left_layout, r, right_layout)?;
                (CpuStorage::F64(out), shape)
            }
            _ => candle_core::bail!(
                "head-product: only f32 and f64 operands of one type are supported"
            ),
        })
    }

    /// For `C = L · op(R)` (the forward products never transpose the left): `∂L = ∂C · op(R)ᵀ`,
    /// each left head with its group's right head; `∂R` sums its group's `Lᵀ · ∂C` (or, for
    /// `op(R) = Rᵀ`, the transposes `∂Cᵀ · L`).
    fn bwd(
        &self,
        left: &Tensor,
        right: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        if self.transpose_left || !matches!(self.heads, Heads::Spread) {
            candle_core::bail!("head-product: no backward for this product");
        }
        let grad = grad_res.contiguous()?;
        let d_left = grad.apply_op2_no_bwd(
            right,
            &HeadProduct {
                transpose_left: false,
                transpose_right: !self.transpose_right,
                heads: Heads::Spread,
                stop: self.stop.clone(),
            },
        )?;
        let sum = HeadProduct {
            transpose_left: true,
            transpose_right: false,
            heads: Heads::Sum { groups: right.dim(1)? },
            stop: self.stop.clone(),
        };
        let d_right = match self.transpose_right {
            true => grad.apply_op2_no_bwd(left, &sum)?,
            false => left.apply_op2_no_bwd(&grad, &sum)?,
        };
        Ok((Some(d_left), Some(d_right)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::runtime::random::SplitMix64;
    use candle_core::{Device, Var};

    fn tensor(shape: (usize, usize, usize, usize), seed: u64) -> Var {
        let mut rng = SplitMix64::new(seed);
        let count = shape.0 * shape.1 * shape.2 * shape.3;
        let values = (0..count).map(|_| (rng.next_u64() % 2001) as f64 / 1000.0 - 1.0).collect();
        Var::from_vec(values, shape, &Device::Cpu).unwrap()
    }

    /// Each of `groups` key/value heads copied for its `n` query heads, as candle's matmul needs.
    fn repeated(x: &Tensor, n: usize) -> Tensor {
        let (b, groups, seq, hd) = x.dims4().unwrap();
        x.unsqueeze(2)
            .unwrap()
            .broadcast_as((b, groups, n, seq, hd))
            .unwrap()
            .reshape((b, groups * n, seq, hd))
            .unwrap()
    }

    /// Attention's two products, values and gradients, against candle's matmul on repeated
    /// key/value heads (whose backward candle computes itself): 2 texts, 6 query heads in 2 groups.
    #[test]
    fn equals_candle_s_matmul_on_repeated_heads() {
        let (q, k, v) = (tensor((2, 6, 5, 4), 1), tensor((2, 2, 5, 4), 2), tensor((2, 2, 5, 4), 3));
        let mixing = tensor((2, 6, 5, 4), 4);
        let ours = |q: &Tensor, k: &Tensor, v: &Tensor| {
            let scores = scores(&Default::default(), q, k).unwrap();
            (
                scores.clone(),
                mix(
                    &Default::default(),
                    &candle_nn::ops::softmax(&scores, candle_core::D::Minus1).unwrap(),
                    v,
                )
                .unwrap(),
            )
        };
        let theirs = |q: &Tensor, k: &Tensor, v: &Tensor| {
            let scores = q.matmul(&repeated(k, 3).t().unwrap()).unwrap();
            (
                scores.clone(),
                candle_nn::ops::softmax(&scores, candle_core::D::Minus1)
                    .unwrap()
                    .matmul(&repeated(v, 3))
                    .unwrap(),
            )
        };
        let mut gradients = Vec::new();
        for (name, product) in [
            ("ours", &ours as &dyn Fn(&Tensor, &Tensor, &Tensor) -> (Tensor, Tensor)),
            ("candle", &theirs),
        ] {
            let (scores, mixed) = product(q.as_tensor(), k.as_tensor(), v.as_tensor());
            let mixed_values = mixed.clone();
            let loss = (mixed * mixing.as_tensor()).unwrap().sum_all().unwrap();
            let grads = loss.backward().unwrap();
            let list = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f64>().unwrap();
            gradients.push((
                name,
                list(&scores),
                list(&mixed_values),
                [&q, &k, &v].map(|x| list(grads.get(x).expect("a gradient"))),
            ));
        }
        let (ours, theirs) = (&gradients[0], &gradients[1]);
        let close = |what: &str, a: &[f64], b: &[f64]| {
            assert_eq!(a.len(), b.len(), "{what}: lengths");
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                assert!((x - y).abs() <= 1e-12 * y.abs().max(1.0), "{what}[{i}]: {x} vs {y}");
            }
        };
        close("scores", &ours.1, &theirs.1);
        close("mixed", &ours.2, &theirs.2);
        for (i, name) in ["∂q", "∂k", "∂v"].iter().enumerate() {
            close(name, &ours.3[i], &theirs.3[i]);
        }
    }
}

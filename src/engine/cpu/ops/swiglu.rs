//! The gated unit of llama-style MLPs, `silu(gate) ⊙ up`, as one op with an analytic backward,
//! split over the pool's threads. Composed from candle's `silu` and `*` it ran on the request's
//! thread alone while the others waited, with libm's scalar `expf` (5 % of the page's time), and
//! its backward took six more elementwise passes.

use crate::engine::cpu::kernels::lanes::{self, Lanes};
use crate::engine::cpu::ops::custom_op::contiguous_range;
use crate::engine::error::Result;
use crate::engine::runtime::context::StopToken;
use crate::engine::runtime::parallel;
use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Shape, Tensor, WithDType};

/// `silu(gate) ⊙ up`, with `silu(g) = g · σ(g)`; both `(..., hidden)` of one shape.
pub fn swiglu(stop: &StopToken, gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    Ok(gate.contiguous()?.apply_op2(&up.contiguous()?, SwiGlu(stop.clone()))?)
}

struct SwiGlu(StopToken);

impl CustomOp2 for SwiGlu {
    fn name(&self) -> &'static str {
        "swiglu"
    }

    fn cpu_fwd(
        &self,
        gate: &CpuStorage,
        gate_layout: &Layout,
        up: &CpuStorage,
        up_layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        if gate_layout.shape() != up_layout.shape() {
            candle_core::bail!(
                "swiglu: gate {:?} and up {:?} differ in shape",
                gate_layout.shape(),
                up_layout.shape()
            );
        }
        let (g, u) =
            (contiguous_range("swiglu", gate_layout)?, contiguous_range("swiglu", up_layout)?);
        let out = match (gate, up) {
            (CpuStorage::F32(gate), CpuStorage::F32(up)) => {
                CpuStorage::F32(forward(&self.0, &gate[g], &up[u])?)
            }
            (CpuStorage::F64(gate), CpuStorage::F64(up)) => {
                CpuStorage::F64(forward(&self.0, &gate[g], &up[u])?)
            }
            _ => candle_core::bail!("swiglu: only f32 and f64 inputs of one type are supported"),
        };
        Ok((out, gate_layout.shape().clone()))
    }

    fn bwd(
        &self,
        gate: &Tensor,
        up: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let both =
            gate.apply_op3_no_bwd(up, &grad_res.contiguous()?, &Gradients(self.0.clone()))?;
        Ok((Some(both.get(0)?), Some(both.get(1)?)))
    }
}

/// The backward pass's op, from `gate`, `up` and `dy = ∂L/∂y`: `(2, ...)`, the gradients with
/// respect to `gate` then `up`: `dy · up · σ(g)(1 + g(1 − σ(g)))` and `dy · silu(g)`.
struct Gradients(StopToken);

impl CustomOp3 for Gradients {
    fn name(&self) -> &'static str {
        "swiglu-gradients"
    }

    fn cpu_fwd(
        &self,
        gate: &CpuStorage,
        gate_layout: &Layout,
        up: &CpuStorage,
        up_layout: &Layout,
        dy: &CpuStorage,
        dy_layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        if gate_layout.shape() != up_layout.shape() || gate_layout.shape() != dy_layout.shape() {
            candle_core::bail!("swiglu: gate, up and the gradient differ in shape");
        }
        let (g, u, d) = (
            contiguous_range(self.name(), gate_layout)?,
            contiguous_range(self.name(), up_layout)?,
            contiguous_range(self.name(), dy_layout)?,
        );
        let both = match (gate, up, dy) {
            (CpuStorage::F32(gate), CpuStorage::F32(up), CpuStorage::F32(dy)) => {
                CpuStorage::F32(backward(&self.0, &gate[g], &up[u], &dy[d])?)
            }
            (CpuStorage::F64(gate), CpuStorage::F64(up), CpuStorage::F64(dy)) => {
                CpuStorage::F64(backward(&self.0, &gate[g], &up[u], &dy[d])?)
            }
            _ => candle_core::bail!("swiglu: only f32 and f64 operands of one type are supported"),
        };
        let mut dims = vec![2];
        dims.extend_from_slice(gate_layout.shape().dims());
        Ok((both, Shape::from(dims)))
    }
}

/// Values per piece of a map: the pool's share, in whole groups of four lanes.
fn piece_len(len: usize) -> usize {
    len.div_ceil(parallel::pieces()).next_multiple_of(4).max(4)
}

fn forward<T: Gate>(stop: &StopToken, gate: &[T], up: &[T]) -> candle_core::Result<Vec<T>> {
    let mut out = vec![T::zero(); gate.len()];
    let piece = piece_len(gate.len());
    let pieces = gate.chunks(piece).zip(up.chunks(piece)).zip(out.chunks_mut(piece)).collect();
    parallel::map(stop, pieces, |((gate, up), out)| T::forward(gate, up, out))
        .map_err(candle_core::Error::wrap)?;
    Ok(out)
}

/// The gradients with respect to `gate` and `up`, one after the other.
fn backward<T: Gate>(
    stop: &StopToken,
    gate: &[T],
    up: &[T],
    dy: &[T],
) -> candle_core::Result<Vec<T>> {
    let mut both = vec![T::zero(); 2 * gate.len()];
    let (d_gate, d_up) = both.split_at_mut(gate.len());
    let piece = piece_len(gate.len());
    let inputs = gate.chunks(piece).zip(up.chunks(piece)).zip(dy.chunks(piece));
    let pieces = inputs.zip(d_gate.chunks_mut(piece).zip(d_up.chunks_mut(piece))).collect();
    parallel::map(stop, pieces, |(((gate, up), dy), (d_gate, d_up))| {
        T::backward(gate, up, dy, d_gate, d_up)
    })
    .map_err(candle_core::Error::wrap)?;
    Ok(both)
}

/// One piece of the op in f32 (the page and the CLI, on lanes) or f64 (gradient checks, exact).
trait Gate: WithDType {
    fn forward(gate: &[Self], up: &[Self], out: &mut [Self]);
    fn backward(gate: &[Self], up: &[Self], dy: &[Self], d_gate: &mut [Self], d_up: &mut [Self]);
}

impl Gate for f64 {
    fn forward(gate: &[f64], up: &[f64], out: &mut [f64]) {
        for ((o, &g), &u) in out.iter_mut().zip(gate).zip(up) {
            *o = g * sigmoid(g) * u;
        }
    }

    fn backward(gate: &[f64], up: &[f64], dy: &[f64], d_gate: &mut [f64], d_up: &mut [f64]) {
        for (i, (dg, du)) in d_gate.iter_mut().zip(d_up).enumerate() {
            let (g, s) = (gate[i], sigmoid(gate[i]));
            *du = dy[i] * g * s;
            *dg = dy[i] * up[i] * s * (1.0 + g * (1.0 - s));
        }
    }
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

impl Gate for f32 {
    fn forward(gate: &[f32], up: &[f32], out: &mut [f32]) {
        by_lanes([gate, up], [out], |[g, u]| [lanes::mul(lanes::mul(g, sigmoid_lanes(g)), u)]);
    }

    fn backward(gate: &[f32], up: &[f32], dy: &[f32], d_gate: &mut [f32], d_up: &mut [f32]) {
        by_lanes([gate, up, dy], [d_gate, d_up], |[g, u, dy]| {
            let s = sigmoid_lanes(g);
            let one = lanes::splat(1.0);
            let slope = lanes::mul(s, lanes::add(one, lanes::mul(g, lanes::sub(one, s))));
            [lanes::mul(lanes::mul(dy, u), slope), lanes::mul(lanes::mul(dy, g), s)]
        });
    }
}

#[inline(always)]
fn sigmoid_lanes(x: Lanes) -> Lanes {
    let one = lanes::splat(1.0);
    lanes::div(one, lanes::add(one, lanes::exp(lanes::sub(lanes::zero(), x))))
}

/// `f` of each group of four values at one position of `inputs`, written to `outputs` (all of one
/// length); a last, partial group is padded with zeros.
#[inline(always)]
fn by_lanes<const I: usize, const O: usize>(
    inputs: [&[f32]; I],
    mut outputs: [&mut [f32]; O],
    f: impl Fn([Lanes; I]) -> [Lanes; O],
) {
    let len = outputs[0].len();
    assert!(
        inputs.iter().all(|v| v.len() == len) && outputs.iter().all(|v| v.len() == len),
        "swiglu: operand lengths"
    );
    for start in (0..len).step_by(4) {
        let take = (len - start).min(4);
        let values = f(inputs.map(|v| match take {
            4 => lanes::read(&v[start..]),
            _ => {
                let mut padded = [0.0; 4];
                padded[..take].copy_from_slice(&v[start..]);
                lanes::read(&padded)
            }
        }));
        for (out, value) in outputs.iter_mut().zip(values) {
            match take {
                4 => lanes::write(&mut out[start..], value),
                _ => {
                    let mut padded = [0.0; 4];
                    lanes::write(&mut padded, value);
                    out[start..].copy_from_slice(&padded[..take]);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::runtime::random::SplitMix64;
    use candle_core::{DType, Device, Var};

    fn values(count: usize, seed: u64) -> Vec<f64> {
        let mut rng = SplitMix64::new(seed);
        (0..count).map(|_| (rng.next_u64() % 20_001) as f64 / 1000.0 - 10.0).collect()
    }

    /// An odd length (a partial group of lanes), values over −10..10.
    const LEN: usize = 2 * 3 * 7 + 3;

    #[test]
    fn f32_values_and_gradients_match_f64_ones() {
        let (gate, up, dy) = (values(LEN, 1), values(LEN, 2), values(LEN, 3));
        let single = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
        let double = |v: Vec<f32>| v.into_iter().map(f64::from).collect::<Vec<f64>>();
        let stop = StopToken::new();
        let want = [forward(&stop, &gate, &up).unwrap(), backward(&stop, &gate, &up, &dy).unwrap()];
        let got = [
            double(forward(&stop, &single(&gate), &single(&up)).unwrap()),
            double(backward(&stop, &single(&gate), &single(&up), &single(&dy)).unwrap()),
        ];
        for (name, got, want) in [("value", &got[0], &want[0]), ("gradients", &got[1], &want[1])] {
            assert_eq!(got.len(), want.len());
            for (i, (&g, &w)) in got.iter().zip(want.iter()).enumerate() {
                assert!((g - w).abs() <= 1e-5 * w.abs().max(1.0), "{name}[{i}]: {g} vs {w}");
            }
        }
    }

    /// The backward pass is the derivative of the forward one: central differences in f64.
    #[test]
    fn gradients_match_finite_differences() {
        let device = Device::Cpu;
        let gate = Var::from_vec(values(LEN, 4), LEN, &device).unwrap();
        let up = Var::from_vec(values(LEN, 5), LEN, &device).unwrap();
        let weights = Tensor::from_vec(values(LEN, 6), LEN, &device).unwrap();
        let loss = |gate: &Tensor, up: &Tensor| {
            swiglu(&Default::default(), gate, up).unwrap().mul(&weights).unwrap().sum_all().unwrap()
        };
        let grads = loss(gate.as_tensor(), up.as_tensor()).backward().unwrap();
        let h = 1e-6;
        for (var, other, is_gate) in [(&gate, &up, true), (&up, &gate, false)] {
            let grad = grads.get(var).expect("a gradient").to_vec1::<f64>().unwrap();
            let base = var.to_vec1::<f64>().unwrap();
            for i in 0..LEN {
                let at = |delta: f64| {
                    let mut moved = base.clone();
                    moved[i] += delta;
                    let moved = Tensor::from_vec(moved, LEN, &device).unwrap();
                    let (g, u) = if is_gate {
                        (&moved, other.as_tensor())
                    } else {
                        (other.as_tensor(), &moved)
                    };
                    loss(g, u).to_dtype(DType::F64).unwrap().to_scalar::<f64>().unwrap()
                };
                let numeric = (at(h) - at(-h)) / (2.0 * h);
                assert!(
                    (grad[i] - numeric).abs() <= 1e-6 * numeric.abs().max(1.0),
                    "∂/∂{}[{i}]: {} vs {numeric}",
                    if is_gate { "gate" } else { "up" },
                    grad[i]
                );
            }
        }
    }
}

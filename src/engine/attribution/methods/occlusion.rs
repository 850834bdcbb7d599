//! Occlusion, leave one out (Zeiler & Fergus 2014; for text, Li et al. 2016): token i's score is
//! how much the explained quantity drops when its embedding alone is replaced by the baseline's,
//! f(x) − f(x with eᵢ := bᵢ). Exact forward passes, no gradients; a positive score means the
//! token supported the prediction.

use crate::engine::attribution::methods::coalitions::CHUNK_TOKENS;
use crate::engine::attribution::methods::{
    AttributionMethod, MethodInfo, MethodParams, Param, ScoresFuture,
};
use crate::engine::attribution::problem::{self, Problem};
use crate::engine::error::Result;
use candle_core::Tensor;
use std::ops::Range;

pub struct Occlusion;

const INFO: MethodInfo = MethodInfo {
    name: "occlusion",
    label: "Occlusion (leave one out)",
    signed: true,
    target_independent: false,
    params: &[Param::Baseline],
};

impl AttributionMethod for Occlusion {
    fn info(&self) -> &'static MethodInfo {
        &INFO
    }

    /// Occluding token i leaves the i positions before it as they were, which the passes of
    /// values continue from the text's keys and values where their batching allows.
    fn work(&self, seq: usize, _params: &MethodParams) -> u64 {
        problem::values_work(chunks(seq).map(|chunk| chunk.collect()), seq)
    }

    fn attribute<'a>(
        &'a self,
        problem: &'a Problem<'_>,
        params: &'a MethodParams,
    ) -> ScoresFuture<'a> {
        Box::pin(async move {
            let input = problem.input();
            let baseline = problem.baseline(params.baseline)?;
            let value = problem.input_value()?;
            let mut scores = Vec::with_capacity(problem.len());
            for chunk in chunks(problem.len()) {
                let occluded =
                    chunk.map(|i| occlude(&input, &baseline, i)).collect::<Result<Vec<_>>>()?;
                let values = problem.values(&occluded).await?;
                scores.extend(values.into_iter().map(|v| (value - v) as f32));
            }
            Ok(scores.into())
        })
    }
}

/// The tokens occluded together, in one call of `Problem::values`.
fn chunks(seq: usize) -> impl Iterator<Item = Range<usize>> {
    let per_chunk = (CHUNK_TOKENS / seq.max(1)).max(1);
    (0..seq).step_by(per_chunk).map(move |start| start..(start + per_chunk).min(seq))
}

/// `input` `(seq, width)` with row `i` taken from `baseline`.
fn occlude(input: &Tensor, baseline: &Tensor, i: usize) -> Result<Tensor> {
    let width = input.dim(1)?;
    Ok(input.slice_assign(&[i..i + 1, 0..width], &baseline.narrow(0, i, 1)?)?)
}

//! Attention rollout (Abnar & Zuidema 2020). The residual connection carries each token past the
//! attention, so a layer mixes tokens by Â = ½A + ½I (rows renormalised to sum 1), and the flow
//! from the inputs to the last position through layers 1..L is the last row of Â_L ⋯ Â_1.

use crate::engine::attribution::methods::attention::{
    check_layer_and_head, layer_attention, Attention,
};
use crate::engine::attribution::methods::{
    AttributionMethod, MethodInfo, MethodParams, Param, Scores, ScoresFuture,
};
use crate::engine::attribution::problem::Problem;
use crate::engine::error::Result;
use candle_core::{DType, Tensor};

pub struct Rollout;

const INFO: MethodInfo = MethodInfo {
    name: "rollout",
    label: "Attention rollout",
    signed: false,
    target_independent: true,
    params: &[Param::Layer, Param::Head],
};

impl AttributionMethod for Rollout {
    fn info(&self) -> &'static MethodInfo {
        &INFO
    }

    /// The same pass as attention's.
    fn work(&self, seq: usize, params: &MethodParams) -> u64 {
        Attention.work(seq, params)
    }

    fn attribute<'a>(
        &'a self,
        problem: &'a Problem<'_>,
        params: &'a MethodParams,
    ) -> ScoresFuture<'a> {
        Box::pin(async move { rollout(problem, params, problem.attentions().await?) })
    }
}

/// Through layers `0..=params.layer`, or all of them, on `attentions` (every layer's).
fn rollout(problem: &Problem<'_>, params: &MethodParams, attentions: &[Tensor]) -> Result<Scores> {
    check_layer_and_head(problem, params)?;
    let layers = params.layer.map_or(problem.model.config().layers, |layer| layer + 1);
    let seq = problem.len();
    let input = problem.input();
    let identity = Tensor::eye(seq, input.dtype(), input.device())?;
    // Only the last row of the product is needed: carry it as a row vector from the left,
    // flow ← flow · Â_l for l = L … 1, which costs seq² per layer instead of seq³.
    let mut flow = identity.narrow(0, seq - 1, 1)?; // (1, seq)
    for layer in (0..layers).rev() {
        let mixed = ((layer_attention(attentions, layer, params.head)? + &identity)? * 0.5)?;
        let mixed = mixed.broadcast_div(&mixed.sum_keepdim(1)?)?;
        flow = flow.matmul(&mixed)?;
    }
    Ok(flow.squeeze(0)?.to_dtype(DType::F32)?.to_vec1::<f32>()?.into())
}

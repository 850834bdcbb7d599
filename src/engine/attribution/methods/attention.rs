//! Attention weights as attribution: how strongly the last position attends to each input token,
//! for one layer and head or averaged over them. It shows where the model routes information,
//! not what the prediction depends on; the page offers it for comparison with gradient methods.

use crate::engine::attribution::methods::{
    AttributionMethod, MethodInfo, MethodParams, Param, ScoresFuture,
};
use crate::engine::attribution::problem::Problem;
use crate::engine::error::{EngineError, Result};
use crate::engine::runtime::progress;
use candle_core::{DType, Tensor};

pub struct Attention;

const INFO: MethodInfo = MethodInfo {
    name: "attention",
    label: "Attention weights",
    signed: false,
    target_independent: true,
    params: &[Param::Layer, Param::Head],
};

impl AttributionMethod for Attention {
    fn info(&self) -> &'static MethodInfo {
        &INFO
    }

    /// One forward pass, which keeps every layer's attention probabilities.
    fn work(&self, seq: usize, _params: &MethodParams) -> u64 {
        progress::forward(1, seq)
    }

    fn attribute<'a>(
        &'a self,
        problem: &'a Problem<'_>,
        params: &'a MethodParams,
    ) -> ScoresFuture<'a> {
        Box::pin(async move {
            check_layer_and_head(problem, params)?;
            let layers = match params.layer {
                Some(layer) => layer..layer + 1,
                None => 0..problem.model.config().layers,
            };
            let (last, attentions) = (problem.len() - 1, problem.attentions().await?);
            let rows = layers
                .map(|layer| Ok(layer_attention(attentions, layer, params.head)?.get(last)?))
                .collect::<Result<Vec<_>>>()?;
            let mean = Tensor::stack(&rows, 0)?.mean(0)?;
            Ok(mean.to_dtype(DType::F32)?.to_vec1::<f32>()?.into())
        })
    }
}

/// `InvalidRequest`, naming the valid range, when `params.layer` or `params.head` is not in the model.
pub(super) fn check_layer_and_head(problem: &Problem, params: &MethodParams) -> Result<()> {
    let config = problem.model.config();
    for (what, chosen, count) in
        [("layer", params.layer, config.layers), ("head", params.head, config.heads)]
    {
        match chosen {
            Some(index) if index >= count => {
                return Err(EngineError::InvalidRequest(format!(
                    "There is no {what} {index}: this model has {count} {what}s, numbered 0 to {}.",
                    count.saturating_sub(1)
                )))
            }
            _ => {}
        }
    }
    Ok(())
}

/// Layer `layer`'s attention probabilities `(seq, seq)` of `attentions` (every layer's, from
/// `Problem::attentions`): head `head`'s, or the mean over heads.
pub(super) fn layer_attention(
    attentions: &[Tensor],
    layer: usize,
    head: Option<usize>,
) -> Result<Tensor> {
    let heads = attentions[layer].squeeze(0)?; // (heads, seq, seq)
    Ok(match head {
        Some(head) => heads.get(head)?,
        None => heads.mean(0)?,
    })
}

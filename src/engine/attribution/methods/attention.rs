//! Attention weights as attribution: how strongly the last position attends to each input token,
//! for one layer and head or averaged over them. It shows where the model routes information,
//! not what the prediction depends on; the page offers it for comparison with gradient methods.

use crate::engine::attribution::methods::{AttributionMethod, MethodParams, Param, Scores};
use crate::engine::attribution::problem::Problem;
use crate::engine::error::{EngineError, Result};
use crate::engine::runtime::progress;
use candle_core::{DType, Tensor};

pub struct Attention;

impl AttributionMethod for Attention {
    fn name(&self) -> &'static str {
        "attention"
    }

    fn label(&self) -> &'static str {
        "Attention weights"
    }

    fn signed(&self) -> bool {
        false
    }

    fn params(&self) -> &'static [Param] {
        &[Param::Layer, Param::Head]
    }

    /// One forward pass, which keeps every layer's attention probabilities.
    fn work(&self, seq: usize, _params: &MethodParams) -> u64 {
        progress::forward(1, seq)
    }

    fn attribute(&self, problem: &Problem, params: &MethodParams) -> Result<Scores> {
        check_layer_and_head(problem, params)?;
        let layers = match params.layer {
            Some(layer) => layer..layer + 1,
            None => 0..problem.model.config().layers,
        };
        let last = problem.len() - 1;
        let rows = layers
            .map(|layer| Ok(layer_attention(problem, layer, params.head)?.get(last)?))
            .collect::<Result<Vec<_>>>()?;
        let mean = Tensor::stack(&rows, 0)?.mean(0)?;
        Ok(mean.to_dtype(DType::F32)?.to_vec1::<f32>()?.into())
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

/// Layer `layer`'s attention probabilities `(seq, seq)` on the input: head `head`'s, or the mean
/// over heads.
pub(super) fn layer_attention(
    problem: &Problem,
    layer: usize,
    head: Option<usize>,
) -> Result<Tensor> {
    let heads = problem.attentions()?[layer].squeeze(0)?; // (heads, seq, seq)
    Ok(match head {
        Some(head) => heads.get(head)?,
        None => heads.mean(0)?,
    })
}

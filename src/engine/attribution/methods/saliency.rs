//! Gradient saliency: the L2 norm over the embedding dimension of ∂ f / ∂ eᵢ for each input
//! token embedding eᵢ (Simonyan et al. 2014, for token embeddings).

use crate::engine::attribution::methods::{
    AttributionMethod, MethodInfo, MethodParams, ScoresFuture,
};
use crate::engine::attribution::problem::Problem;
use crate::engine::error::Result;
use candle_core::{Tensor, D};

pub struct Saliency;

const INFO: MethodInfo = MethodInfo {
    name: "saliency",
    label: "Gradient saliency (L2 norm)",
    signed: false,
    target_independent: false,
    params: &[],
};

impl AttributionMethod for Saliency {
    fn info(&self) -> &'static MethodInfo {
        &INFO
    }

    fn attribute<'a>(&'a self, problem: &'a Problem<'_>, _: &'a MethodParams) -> ScoresFuture<'a> {
        Box::pin(async move {
            let norms = row_norms(&problem.input_gradient().await?)?;
            Ok(norms.to_dtype(candle_core::DType::F32)?.to_vec1::<f32>()?.into())
        })
    }
}

/// The L2 norm over the embedding dimension of each row of a `(seq, width)` gradient: `(seq,)`.
pub(super) fn row_norms(gradient: &Tensor) -> Result<Tensor> {
    Ok(gradient.sqr()?.sum(D::Minus1)?.sqrt()?)
}

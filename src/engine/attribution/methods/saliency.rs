//! Gradient saliency: the L2 norm over the embedding dimension of ∂ f / ∂ eᵢ for each input
//! token embedding eᵢ (Simonyan et al. 2014, for token embeddings).

use crate::engine::attribution::methods::{AttributionMethod, MethodParams, Scores};
use crate::engine::attribution::problem::Problem;
use crate::engine::error::Result;
use candle_core::{Tensor, D};

pub struct Saliency;

impl AttributionMethod for Saliency {
    fn name(&self) -> &'static str {
        "saliency"
    }

    fn label(&self) -> &'static str {
        "Gradient saliency (L2 norm)"
    }

    fn signed(&self) -> bool {
        false
    }

    fn attribute(&self, problem: &Problem, _params: &MethodParams) -> Result<Scores> {
        let norms = row_norms(&problem.input_gradient()?)?;
        Ok(norms.to_dtype(candle_core::DType::F32)?.to_vec1::<f32>()?.into())
    }
}

/// The L2 norm over the embedding dimension of each row of a `(seq, width)` gradient: `(seq,)`.
pub(super) fn row_norms(gradient: &Tensor) -> Result<Tensor> {
    Ok(gradient.sqr()?.sum(D::Minus1)?.sqrt()?)
}

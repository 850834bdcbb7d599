//! Gradient saliency: the L2 norm over the embedding dimension of ∂ score / ∂ eᵢ for each input
//! token embedding eᵢ (Simonyan et al. 2014, for token embeddings).

use super::AttributionMethod;
use crate::engine::error::Result;
use crate::engine::problem::Problem;
use candle_core::D;

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

    fn attribute(&self, problem: &Problem) -> Result<Vec<f32>> {
        let gradient = problem.input_gradient()?; // (seq, width)
        let norms = gradient.sqr()?.sum(D::Minus1)?.sqrt()?;
        Ok(norms.to_dtype(candle_core::DType::F32)?.to_vec1()?)
    }
}

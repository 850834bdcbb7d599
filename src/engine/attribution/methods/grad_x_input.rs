//! Gradient × input: Σ_d (∂ f / ∂ eᵢ)_d · (eᵢ)_d for each input token embedding eᵢ, the first-order
//! Taylor estimate of how f changes when eᵢ is scaled down to zero (Shrikumar et al. 2016).

use crate::engine::attribution::methods::{AttributionMethod, MethodParams, Scores};
use crate::engine::attribution::problem::Problem;
use crate::engine::error::Result;
use candle_core::{DType, D};

pub struct GradXInput;

impl AttributionMethod for GradXInput {
    fn name(&self) -> &'static str {
        "grad_x_input"
    }

    fn label(&self) -> &'static str {
        "Gradient × input"
    }

    fn signed(&self) -> bool {
        true
    }

    fn attribute(&self, problem: &Problem, _params: &MethodParams) -> Result<Scores> {
        let products = (problem.input_gradient()? * problem.input())?; // (seq, width)
        Ok(products.sum(D::Minus1)?.to_dtype(DType::F32)?.to_vec1::<f32>()?.into())
    }
}

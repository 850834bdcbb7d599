//! Gradient × input: Σ_d (∂ f / ∂ eᵢ)_d · (eᵢ)_d for each input token embedding eᵢ, the first-order
//! Taylor estimate of how f changes when eᵢ is scaled down to zero (Shrikumar et al. 2016).

use crate::engine::attribution::methods::{
    AttributionMethod, MethodInfo, MethodParams, ScoresFuture,
};
use crate::engine::attribution::problem::Problem;
use candle_core::{DType, D};

pub struct GradXInput;

const INFO: MethodInfo = MethodInfo {
    name: "grad_x_input",
    label: "Gradient × input",
    signed: true,
    target_independent: false,
    params: &[],
};

impl AttributionMethod for GradXInput {
    fn info(&self) -> &'static MethodInfo {
        &INFO
    }

    fn attribute<'a>(&'a self, problem: &'a Problem<'_>, _: &'a MethodParams) -> ScoresFuture<'a> {
        Box::pin(async move {
            let products = (problem.input_gradient().await? * problem.input())?; // (seq, width)
            Ok(products.sum(D::Minus1)?.to_dtype(DType::F32)?.to_vec1::<f32>()?.into())
        })
    }
}

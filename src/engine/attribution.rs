//! The engine's front door: text + target + method in, tokens + prediction + scores out.

use super::error::Result;
use super::methods;
use super::model::Model;
use super::problem::{top_indices, Problem, TargetChoice};
use super::tokenizer::Token;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Request {
    pub text: String,
    pub target: TargetChoice,
    pub method: String,
    /// How many top predictions to report.
    pub top_k: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    pub id: u32,
    pub text: String,
    pub prob: f32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Attribution {
    pub tokens: Vec<Token>,
    pub target: Prediction,
    pub top_k: Vec<Prediction>,
    pub method: String,
    /// Whether scores can be negative (diverging colour scale) or not (sequential).
    pub signed: bool,
    /// One score per token, in token order.
    pub scores: Vec<f32>,
}

pub fn attribute(model: &Model, request: &Request) -> Result<Attribution> {
    methods::by_name(&request.method)?; // an unknown method fails before the forward pass
    let problem = Problem::new(model, &request.text, &request.target)?;
    explain(&problem, &request.method, request.top_k)
}

/// The second half of [`attribute`], for callers that time the forward pass apart.
pub fn explain(problem: &Problem, method: &str, top_k: usize) -> Result<Attribution> {
    let method = methods::by_name(method)?;
    let prediction = |id: u32| -> Result<Prediction> {
        Ok(Prediction { id, text: problem.model.tokenizer.token(id)?.text, prob: problem.probs[id as usize] })
    };
    let top_k = top_indices(&problem.probs, top_k).into_iter().map(prediction).collect::<Result<_>>()?;
    let scores = method.attribute(problem)?;
    debug_assert_eq!(scores.len(), problem.tokens.len());
    Ok(Attribution {
        target: prediction(problem.target)?,
        top_k,
        method: method.name().to_string(),
        signed: method.signed(),
        scores,
        tokens: problem.tokens.clone(),
    })
}

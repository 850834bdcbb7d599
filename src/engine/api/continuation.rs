//! Attribution along a continuation: for a prefix and the text that follows it, explain each
//! continuation token from everything before it. Row j is one ordinary attribution problem whose
//! input is the prefix and the first j continuation tokens and whose target is continuation token
//! j, so the rows form a lower-triangular matrix (token × earlier token).

use crate::engine::api::request::Request;
use crate::engine::attribution::methods;
use crate::engine::attribution::problem::{Backend, Prediction, Problem, TargetChoice, TargetSpec};
use crate::engine::error::{EngineError, Result};
use crate::engine::model::tokenizer::Token;
use crate::engine::model::Model;
use crate::engine::runtime::context::RunContext;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Continuation {
    /// The prefix's tokens, then the continuation's.
    pub tokens: Vec<Token>,
    /// Index in `tokens` of the first continuation token.
    pub output_start: usize,
    /// One row per continuation token, in order.
    pub rows: Vec<ContinuationRow>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ContinuationRow {
    /// The continuation token explained, with its probability after the tokens before it.
    pub target: Prediction,
    /// One score per earlier token (`output_start + j` scores for row j).
    pub scores: Vec<f32>,
}

/// Explains each token of `continuation` after the request's text with its method and settings
/// (each row's passes on `backend`), on
/// the quantity its target asks of that token (the target's token and foil are not used). The
/// request's `max_tokens` bounds the text and continuation together.
pub async fn attribute_continuation(
    backend: Backend,
    model: &Model,
    request: &Request,
    continuation: &str,
    context: &RunContext,
) -> Result<Continuation> {
    let (method, params, max_tokens) =
        (methods::by_name(&request.method)?, &request.params, request.max_tokens);
    let mut tokens = model.tokenize_input(&request.text, max_tokens)?;
    let output_start = tokens.len();
    // Tokenized on its own, as the model would have produced it token by token after the prefix.
    tokens.extend(model.tokenizer.tokenize_continuation(continuation)?);
    if tokens.len() == output_start {
        return Err(EngineError::InvalidRequest(
            "The continuation is empty: type the text that follows.".into(),
        ));
    }
    let length = model.config().context_length;
    let max = max_tokens.map_or(length, |m| m.min(length));
    if tokens.len() > max {
        return Err(EngineError::TextTooLong { tokens: tokens.len(), max, context: length });
    }
    let mut rows = Vec::with_capacity(tokens.len() - output_start);
    for end in output_start..tokens.len() {
        let spec = TargetSpec {
            token: TargetChoice::Id(tokens[end].id),
            kind: request.target.kind,
            foil: None,
        };
        let problem =
            Problem::on(backend.clone(), model, tokens[..end].to_vec(), &spec, context).await?;
        let scores = method.attribute(&problem, params).await?.values;
        rows.push(ContinuationRow { target: Prediction::of(&problem, tokens[end].id)?, scores });
    }
    Ok(Continuation { tokens, output_start, rows })
}

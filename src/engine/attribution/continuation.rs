//! Attribution along a continuation: for a prefix and the text that follows it, explain each
//! continuation token from everything before it. Row j is one ordinary attribution problem whose
//! input is the prefix and the first j continuation tokens and whose target is continuation token
//! j, so the rows form a lower-triangular matrix (token × earlier token).

use crate::engine::api::Prediction;
use crate::engine::attribution::methods::{self, MethodParams};
use crate::engine::attribution::objective::TargetKind;
use crate::engine::attribution::problem::{Problem, TargetChoice, TargetSpec};
use crate::engine::error::{EngineError, Result};
use crate::engine::model::tokenizer::Token;
use crate::engine::model::Model;
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

/// Explains each token of `continuation` after `prefix` with `method`, on the quantity `kind` of
/// that token. `max_tokens` bounds the prefix and continuation together.
pub fn attribute_continuation(
    model: &Model,
    prefix: &str,
    continuation: &str,
    kind: TargetKind,
    method: &str,
    params: &MethodParams,
    max_tokens: Option<usize>,
) -> Result<Continuation> {
    let method = methods::by_name(method)?;
    let mut tokens = model.tokenize_input(prefix, max_tokens)?;
    let output_start = tokens.len();
    // Tokenized on its own, as the model would have produced it token by token after the prefix.
    tokens.extend(model.tokenizer.tokenize_continuation(continuation)?);
    if tokens.len() == output_start {
        return Err(EngineError::InvalidRequest(
            "The continuation is empty: type the text that follows.".into(),
        ));
    }
    let context = model.config().context_length;
    let max = max_tokens.map_or(context, |m| m.min(context));
    if tokens.len() > max {
        return Err(EngineError::TextTooLong { tokens: tokens.len(), max, context });
    }
    let rows = (output_start..tokens.len())
        .map(|end| {
            let spec = TargetSpec { token: TargetChoice::Id(tokens[end].id), kind, foil: None };
            let problem = Problem::from_tokens(model, tokens[..end].to_vec(), &spec)?;
            let scores = method.attribute(&problem, params)?.values;
            Ok(ContinuationRow { target: Prediction::of(&problem, tokens[end].id)?, scores })
        })
        .collect::<Result<_>>()?;
    Ok(Continuation { tokens, output_start, rows })
}

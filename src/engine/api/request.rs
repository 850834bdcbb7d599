//! One run's question as the page, a link or the CLI asks it: the text, what to explain of its
//! next token, with which method and settings, and what else to compute.

use crate::engine::attribution::methods::MethodParams;
use crate::engine::attribution::problem::TargetSpec;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Request {
    pub text: String,
    pub target: TargetSpec,
    pub method: String,
    #[serde(default)]
    pub params: MethodParams,
    /// How many top predictions to report.
    pub top_k: usize,
    /// Refuse longer texts (below the model's context), to bound memory.
    pub max_tokens: Option<usize>,
    /// Also measure how faithful the scores are (deletion curve, comprehensiveness, sufficiency).
    #[serde(default)]
    pub faithfulness: bool,
    /// Also explain each token of this text, read as the continuation of `text`.
    #[serde(default)]
    pub continuation: Option<String>,
}

impl Request {
    /// `method` on `text`, explaining p(top prediction), with default settings.
    pub fn new(text: impl Into<String>, method: &str) -> Self {
        Self {
            text: text.into(),
            target: TargetSpec::top(),
            method: method.into(),
            params: MethodParams::default(),
            top_k: 5,
            max_tokens: None,
            faithfulness: false,
            continuation: None,
        }
    }
}

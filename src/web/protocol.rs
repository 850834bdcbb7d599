//! Messages between the page and its worker (sent with serde-wasm-bindgen over postMessage).

use crate::engine::arch::DecoderConfig;
use crate::engine::faithfulness::Faithfulness;
use crate::engine::{Attribution, Request};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
pub enum ToWorker {
    /// Fetch a GGUF file and load it (replacing any loaded model).
    Load { url: String },
    /// Explain `request`, and run each method of `compare` on the same problem. When the request
    /// asks for faithfulness, it is measured after `Done`, one `Faithfulness` message per map.
    Run { id: u64, request: Request, compare: Vec<String> },
}

#[derive(Clone, Serialize, Deserialize)]
pub enum FromWorker {
    /// The worker's wasm is up and listening.
    Ready,
    Progress { loaded: f64, total: Option<f64> },
    Loaded { model: ModelSummary, load_ms: f64 },
    LoadFailed { message: String },
    /// The maps of run `id`. `Faithfulness` messages follow for each method in `measuring`
    /// (the run's own method first); the worker is free after the last one.
    Done { id: u64, output: RunOutput, timings: Timings, measuring: Vec<String> },
    Faithfulness { id: u64, method: String, outcome: Result<Faithfulness, String>, ms: f64 },
    RunFailed { id: u64, message: String },
}

/// Everything one run computes before the faithfulness check.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunOutput {
    /// The request's method, with the continuation when one was given.
    pub attribution: Attribution,
    /// f(baseline), when the method reports completeness (integrated gradients).
    pub baseline_value: Option<f64>,
    /// Each compared method's scores on the same problem, in the order asked for.
    pub compared: Vec<MethodScores>,
    /// Spearman's rank correlation for each pair of `compared`.
    pub agreements: Vec<Agreement>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MethodScores {
    pub method: String,
    pub signed: bool,
    pub scores: Vec<f32>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Agreement {
    pub a: String,
    pub b: String,
    /// `None` when undefined (a constant map).
    pub spearman: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelSummary {
    pub name: String,
    pub bytes: usize,
    pub config: DecoderConfig,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    /// Tokenize, embed, forward pass.
    pub forward_ms: f64,
    /// The methods' own work (the main map, the continuation and compared methods).
    pub attribute_ms: f64,
    pub total_ms: f64,
    /// Size of the worker's wasm memory after the run.
    pub wasm_memory: f64,
}

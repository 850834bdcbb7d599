//! Messages between the page and its worker (sent with serde-wasm-bindgen over postMessage).

use crate::engine::arch::DecoderConfig;
use crate::engine::{Attribution, Request};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
pub enum ToWorker {
    /// Fetch a GGUF file and load it (replacing any loaded model).
    Load { url: String },
    Run { id: u64, request: Request },
}

#[derive(Clone, Serialize, Deserialize)]
pub enum FromWorker {
    /// The worker's wasm is up and listening.
    Ready,
    Progress { loaded: f64, total: Option<f64> },
    Loaded { model: ModelSummary, load_ms: f64 },
    LoadFailed { message: String },
    Done { id: u64, attribution: Attribution, timings: Timings },
    RunFailed { id: u64, message: String },
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
    /// The method's own work (for saliency: the backward pass).
    pub attribute_ms: f64,
    pub total_ms: f64,
    /// Size of the worker's wasm memory after the run.
    pub wasm_memory: f64,
}

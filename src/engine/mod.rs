//! The engine: GGUF bytes → model → attribution scores. Plain Rust, no I/O, no clocks: it takes
//! bytes and text and returns numbers, natively and in wasm alike.

pub mod api;
pub mod attribution;
pub mod cpu;
pub mod error;
pub mod evaluation;
#[cfg(gpu)]
pub mod gpu;
pub mod model;
pub mod runtime;

pub use api::{attribute, explain, explain_request, run, run_on, Attribution, Prediction, Request};
pub use attribution::methods::MethodParams;
pub use attribution::objective::TargetKind;
pub use attribution::problem::{Backend, BackendKind, Baseline, Problem, TargetChoice, TargetSpec};
pub use error::{EngineError, Result};
pub use model::Model;
pub use runtime::context::RunContext;

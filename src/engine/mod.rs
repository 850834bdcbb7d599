//! The engine: GGUF bytes → model → attribution scores. Plain Rust, no I/O, no clocks: it takes
//! bytes and text and returns numbers, natively and in wasm alike.

pub mod arch;
pub mod attribution;
mod causal_softmax;
pub mod continuation;
pub mod error;
pub mod faithfulness;
mod frozen_linear;
pub mod gguf;
pub mod gradient;
pub mod grouping;
mod layers;
pub mod memory;
pub mod methods;
pub mod model;
pub mod objective;
pub mod parallel;
pub mod problem;
pub mod stats;
pub mod token_text;
pub mod tokenizer;
pub mod weights;

pub use attribution::{attribute, explain, explain_request, Attribution, Prediction, Request};
pub use error::{EngineError, Result};
pub use model::Model;
pub use methods::{Baseline, MethodParams};
pub use objective::TargetKind;
pub use problem::{Problem, TargetChoice, TargetSpec};

//! The engine: GGUF bytes → model → attribution scores. Plain Rust, no I/O, no clocks: it takes
//! bytes and text and returns numbers, natively and in wasm alike.

pub mod arch;
pub mod attribution;
pub mod error;
mod frozen_linear;
pub mod gguf;
mod layers;
pub mod methods;
pub mod model;
pub mod problem;
pub mod token_text;
pub mod tokenizer;
pub mod weights;

pub use attribution::{attribute, explain, Attribution, Prediction, Request};
pub use error::{EngineError, Result};
pub use model::Model;
pub use problem::{Problem, TargetChoice};

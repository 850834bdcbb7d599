//! The engine: GGUF bytes → model → attribution scores. Plain Rust, no I/O, no clocks: it takes
//! bytes and text and returns numbers, natively and in wasm alike.

pub mod arch;
pub mod attribution;
// The CLI's matrix kernels on CPUs with AVX-512 (chosen at run time; gemm elsewhere).
#[cfg(target_arch = "x86_64")]
mod avx512_matmul;
mod causal_softmax;
pub mod continuation;
mod custom_op;
mod dense;
pub mod error;
pub mod faithfulness;
mod frozen_linear;
pub mod gguf;
pub mod gpu;

pub mod gradient;
pub mod grouping;
mod head_product;
mod lanes;
mod layers;
pub mod memory;
pub mod methods;
pub mod model;
pub mod objective;
// The page's matrix kernel; natively only its tests (gemm computes there).
#[cfg(any(test, all(target_arch = "wasm32", target_feature = "simd128")))]
mod panel_matmul;
pub mod parallel;
pub mod problem;
pub mod progress;
mod rms_norm;
pub mod stats;
mod swiglu;
pub mod token_text;
pub mod tokenizer;
pub mod weights;

pub use attribution::{attribute, explain, explain_request, Attribution, Prediction, Request};
pub use error::{EngineError, Result};
pub use methods::{Baseline, MethodParams};
pub use model::Model;
pub use objective::TargetKind;
pub use problem::{Problem, TargetChoice, TargetSpec};

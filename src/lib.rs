//! Salient: gradient attribution for a quantized language model, computed where it is shown.
//! `engine` is plain Rust (native and wasm); `share` encodes page state into links (native and
//! wasm, so it is tested and fuzzed natively); `web` is the page and its worker (wasm only).

pub mod engine;
pub mod share;
#[cfg(target_arch = "wasm32")]
pub mod web;

//! Salient: gradient attribution for a quantized language model, computed where it is shown.
//! `engine` is plain Rust (native and wasm); `web` is the page and its worker (wasm only).

pub mod engine;
#[cfg(target_arch = "wasm32")]
pub mod web;

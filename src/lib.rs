//! Salient: gradient attribution for a quantized language model, computed where it is shown.
//! `engine` is plain Rust (native and wasm); `state` (every choice on the page, the link codec and
//! what links and exports hold) is native too, so it is tested and fuzzed natively; `web` is the page and its worker (wasm only).

pub mod engine;
pub mod state;
#[cfg(target_arch = "wasm32")]
pub mod web;

//! Salient: gradient attribution for a quantized language model, computed where it is shown.
//! `engine` is plain Rust (native and wasm); `settings` (every choice on the page), `share` (the
//! link codec) and `shared_state` (what links and exports hold) are native too, so they are
//! tested and fuzzed natively; `web` is the page and its worker (wasm only).

pub mod engine;
pub mod settings;
pub mod share;
pub mod shared_state;
#[cfg(target_arch = "wasm32")]
pub mod web;

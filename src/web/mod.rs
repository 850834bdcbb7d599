//! The page (Leptos) and its worker. One wasm binary serves both (Trunk builds it single-threaded;
//! `scripts/build-threads.sh` builds it again with threads for the worker): `start` mounts the UI
//! on the page and does nothing in a worker, where `public/worker.js` calls `serve_engine`.

mod app;
mod bridge;
mod compare;
mod controls;
mod embed;
mod export;
mod faithfulness;
mod heatmap;
mod matrix;
mod memory_guard;
mod model_cache;
mod model_loading;
mod models;
mod panels;
mod persist;
mod protocol;
mod share_link;
mod targets;
mod worker;

use wasm_bindgen::JsCast;

pub fn start() {
    console_error_panic_hook::set_once();
    match js_sys::global().dyn_ref::<web_sys::DedicatedWorkerGlobalScope>() {
        None => leptos::mount::mount_to_body(app::App),
        // The engine's worker (`public/worker.js` calls `serve_engine` once its thread pool, if
        // any, is up) or a thread of that pool (wasm-bindgen-rayon's script drives it).
        Some(_) => {}
    }
}

/// Starts answering the page; called by `public/worker.js` in the engine's worker.
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn serve_engine() {
    worker::start();
}

/// The multi-threaded build's pool start, for `public/worker.js` (wasm-bindgen-rayon's
/// `initThreadPool`).
#[cfg(target_feature = "atomics")]
pub use wasm_bindgen_rayon::init_thread_pool;

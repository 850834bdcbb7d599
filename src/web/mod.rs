//! The page (Leptos) and its worker. One wasm binary serves both: `start` looks at where it runs.

mod app;
mod bridge;
mod compare;
mod controls;
mod embed;
mod export;
mod faithfulness;
mod heat;
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

/// `Settings` compiles natively (share-state tests); the page's files name it `super::settings`.
use crate::settings;

use wasm_bindgen::JsCast;

pub fn start() {
    console_error_panic_hook::set_once();
    if js_sys::global().dyn_ref::<web_sys::DedicatedWorkerGlobalScope>().is_some() {
        worker::run();
    } else {
        leptos::mount::mount_to_body(app::App);
    }
}

//! The page (Leptos) and its worker. One wasm binary serves both: `start` looks at where it runs.

mod app;
mod bridge;
mod compare;
mod controls;
mod faithfulness;
mod heat;
mod heatmap;
mod matrix;
mod panels;
mod protocol;
mod settings;
mod targets;
mod worker;

use wasm_bindgen::JsCast;

pub fn start() {
    console_error_panic_hook::set_once();
    if js_sys::global().dyn_ref::<web_sys::DedicatedWorkerGlobalScope>().is_some() {
        worker::run();
    } else {
        leptos::mount::mount_to_body(app::App);
    }
}

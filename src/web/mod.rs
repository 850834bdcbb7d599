//! The page (Leptos) and its worker. One wasm binary serves both (Trunk builds it single-threaded;
//! `scripts/build-threads.sh` builds it again with threads for the worker): `start` mounts the UI
//! on the page and does nothing in a worker, where `public/worker.js` calls `serve_engine`.
//!
//! The page is `index.html` (the full page, which must not run inside another site's frame: its
//! buttons download models and delete cached ones) or `embed.html` (the embed view, made to be
//! framed). Both files are the same bundle; `start` reads which one it is.

mod address;
mod crash;
mod model_cache;
mod page;
mod protocol;
mod worker;

use leptos::prelude::*;
use wasm_bindgen::JsCast;

/// Which page this document is.
enum PageKind {
    Full,
    Embed,
    /// An older embed address (`?embed`, `#embed=`) on the full page: the same state at
    /// `embed.html`.
    MovedEmbed(String),
    /// The full page inside another origin's frame: it does not start.
    Framed,
}

/// Whether this window is a frame of a page on another origin (whose location it cannot read).
fn framed_by_another_origin() -> bool {
    match window().top() {
        Ok(Some(top)) => !js_sys::Object::is(&top, &window()) && top.location().origin().is_err(),
        _ => false,
    }
}

fn page_kind() -> PageKind {
    if address::is_embed_page() {
        return PageKind::Embed;
    }
    let location = window().location();
    let (search, hash) =
        (location.search().unwrap_or_default(), location.hash().unwrap_or_default());
    let query = web_sys::UrlSearchParams::new_with_str(&search).ok();
    let has = |name: &str| query.as_ref().is_some_and(|q| q.has(name));
    if has(address::EMBED_KEY) || hash.starts_with(&format!("#{}=", address::EMBED_KEY)) {
        let editable = if has("editable") { "?editable" } else { "" };
        let state = hash.replacen(&format!("#{}=", address::EMBED_KEY), "#s=", 1);
        return PageKind::MovedEmbed(format!(
            "{}{}{editable}{state}",
            address::page_directory(),
            address::EMBED_PAGE
        ));
    }
    if framed_by_another_origin() {
        return PageKind::Framed;
    }
    PageKind::Full
}

pub fn start() {
    if js_sys::global().dyn_ref::<web_sys::DedicatedWorkerGlobalScope>().is_some() {
        // The engine's worker (`public/worker.js` calls `serve_engine` once its thread pool, if
        // any, is up) or a thread of that pool (wasm-bindgen-rayon's script drives it).
        return;
    }
    crash::install_page_hook();
    match page_kind() {
        PageKind::Full => {
            leptos::mount::mount_to_body(|| view! { <page::view::layout::App embed=false/> })
        }
        PageKind::Embed => {
            leptos::mount::mount_to_body(|| view! { <page::view::layout::App embed=true/> })
        }
        PageKind::MovedEmbed(address) => {
            let _ = window().location().replace(&address);
        }
        PageKind::Framed => leptos::mount::mount_to_body(page::view::layout::Framed),
    }
}

/// Starts answering the page; called by `public/worker.js` in the engine's worker, which says
/// whether to compute on the GPU (and, when the GPU was chosen but is not there, why).
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn serve_engine(gpu: bool, not_on_gpu: Option<String>) {
    worker::start(gpu, not_on_gpu);
}

pub use crash::test_panic;
#[cfg(gpu)]
pub use worker::{gpu_probe, test_lose_gpu};

/// The multi-threaded build's pool start, for `public/worker.js` (wasm-bindgen-rayon's
/// `initThreadPool`).
#[cfg(target_feature = "atomics")]
pub use wasm_bindgen_rayon::init_thread_pool;

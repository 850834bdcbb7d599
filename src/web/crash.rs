//! When the code has a bug anyway. A panic in wasm aborts the instance: on the page every control
//! then stops answering, and in the worker the run never ends. So each side installs a panic hook
//! that says so before the abort:
//! - on the page, a notice over the page with the reason, a reload and a reset link (the page
//!   without its fragment: the state that crashed it does not come back), built with plain DOM
//!   calls since the UI's own runtime may be what broke; the text is already saved (`persist`);
//! - in the worker (any of its threads), a message on the channel named after the worker, which
//!   the page hears even when the worker's own thread is blocked waiting for its pool; the page
//!   then terminates the worker and starts another (`Ui::worker_crashed`).
//!
//! `test_panic` panics on purpose, for the tests; `public/boot.js` and `public/worker.js` expose it
//! as `salientTestPanic` on their global, where only the tests call it.

use std::panic::PanicHookInfo;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

/// The prefix of a worker's death notice on its channel (`WorkerBridge` reads every string there
/// as one).
pub const PANIC_NOTICE: &str = "panic: ";

fn reason(info: &PanicHookInfo) -> String {
    let payload = info.payload();
    let text = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    match info.location() {
        Some(at) => format!("{text} at {}:{}", at.file(), at.line()),
        None => text,
    }
}

/// On the page: the console's report, then the notice.
pub fn install_page_hook() {
    std::panic::set_hook(Box::new(|info| {
        console_error_panic_hook::hook(info);
        show_page_crash(&reason(info));
    }));
}

fn show_page_crash(why: &str) {
    let Some(document) = web_sys::window().and_then(|w| w.document()) else { return };
    let Some(body) = document.body() else { return };
    let reset = crate::web::address::page_directory()
        + if crate::web::address::is_embed_page() { crate::web::address::EMBED_PAGE } else { "" };
    let element = |tag: &str, text: &str| -> Option<web_sys::Element> {
        let e = document.create_element(tag).ok()?;
        e.set_text_content(Some(text));
        Some(e)
    };
    let notice = || -> Option<web_sys::Element> {
        let box_ = document.create_element("div").ok()?;
        box_.set_class_name("crash");
        box_.set_attribute("role", "alert").ok()?;
        box_.set_attribute("data-testid", "crash").ok()?;
        box_.append_child(&element("strong", "Salient hit a bug and stopped.")?.into()).ok()?;
        let text = format!(
            " ({why}) Your text is saved in this browser. Reload the page, or open it without the \
             link or settings that were open: "
        );
        box_.append_child(&element("span", &text)?.into()).ok()?;
        let link = element("a", "reset")?;
        link.set_attribute("href", &reset).ok()?;
        link.set_attribute("data-testid", "crash-reset").ok()?;
        box_.append_child(&link).ok()?;
        Some(box_)
    };
    if let Some(notice) = notice() {
        let _ = body.append_child(&notice);
    }
}

/// In the worker and each of its pool threads: the console's report, then the notice on the
/// worker's channel.
pub fn install_worker_hook(channel: String) {
    std::panic::set_hook(Box::new(move |info| {
        console_error_panic_hook::hook(info);
        if let Ok(channel) = web_sys::BroadcastChannel::new(&channel) {
            let _ = channel.post_message(&format!("{PANIC_NOTICE}{}", reason(info)).into());
        }
    }));
}

/// Panics on purpose, for the tests of the above: `"here"` on the calling thread, `"pool"` inside
/// the engine's pool (a pool thread in the multi-threaded worker).
#[wasm_bindgen]
pub fn test_panic(place: &str) {
    match place {
        "pool" => crate::engine::runtime::parallel::on_pool(|| {
            panic!("a test panic in the engine's pool")
        }),
        _ => panic!("a test panic on the {} thread", thread_name()),
    }
}

fn thread_name() -> &'static str {
    match js_sys::global().dyn_ref::<web_sys::DedicatedWorkerGlobalScope>() {
        Some(_) => "worker's",
        None => "page's",
    }
}

//! The embed view (`?embed#s=…`, or `#embed=…`): what an iframe on another page shows. The
//! highlighted text, the target, the legend and a link to the full page with the same state;
//! with `&editable`, the text editor and the status line too. An embed of a snapshot shows it
//! without loading any model. Framed, it tells the host page its height.

use crate::state::format::short;
use crate::web::page::sharing::{full_page_link, Sharing};
use crate::web::page::ui::Ui;
use crate::web::page::view::editor::Editor;
use crate::web::page::view::heatmap::{HeatMap, Legend};
use crate::web::page::view::panels::Status;
use crate::web::page::view::share::LinkNotes;
use leptos::prelude::*;
use wasm_bindgen::prelude::*;

/// Inside another page's frame: posts the embed's height to the host whenever it changes, as
/// `{salient: "height", height}` (the snippet's script sizes the iframe by it).
fn post_height_to_host() {
    let window = window();
    let Some(parent) = window.parent().ok().flatten().filter(|p| !js_sys::Object::is(p, &window))
    else {
        return;
    };
    let Some(body) = document().body() else { return };
    let measured = body.clone();
    let post = Closure::<dyn FnMut()>::new(move || {
        let message = js_sys::Object::new();
        let height = measured.get_bounding_client_rect().height().ceil();
        let _ = js_sys::Reflect::set(&message, &"salient".into(), &"height".into());
        let _ = js_sys::Reflect::set(&message, &"height".into(), &height.into());
        let _ = parent.post_message(&message, "*");
    });
    if let Ok(observer) = web_sys::ResizeObserver::new(post.as_ref().unchecked_ref()) {
        observer.observe(&body);
        // Both live as long as the page: the observer keeps posting.
        std::mem::forget(observer);
        post.forget();
    }
}

#[component]
pub fn Embed(ui: Ui, sharing: Sharing) -> impl IntoView {
    post_height_to_host();
    let target = move || {
        let output = ui.result.get()?;
        let target = output.attribution.target.clone();
        Some(view! {
            <p class="embed-target" data-testid="embed-target" data-token-id=target.id.to_string()>
                "Next token explained: "<code>{format!("{:?}", target.text)}</code>{format!(" (p = {})", short(target.prob as f64))}
            </p>
        })
    };
    view! {
        <div class="embed" data-testid="embed-view">
            <LinkNotes ui=ui sharing=sharing/>
            // editable: the text is the map; else a read-only map under the target
            {sharing.editable.then(|| view! { <Editor ui=ui/> })}
            <Show when=move || sharing.editable || ui.result.with(Option::is_none)>
                <Status ui=ui/>
            </Show>
            {target}
            {(!sharing.editable).then(|| view! { <HeatMap ui=ui testid="heatmap"/> })}
            <Legend ui=ui/>
            <p class="embed-footer">
                <a data-testid="open-in-salient" href=move || full_page_link(ui, sharing) target="_blank" rel="noopener">
                    "open in Salient ↗"
                </a>
            </p>
        </div>
    }
}

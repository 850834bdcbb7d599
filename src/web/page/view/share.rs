//! What the page says about the link it was opened with (its problem, what it asked beyond the
//! page's bounds, the model to confirm, the snapshot and its recomputation), and the panel that
//! makes links, embed snippets and exports.

use crate::state::embed_snippet::{self, themed, EmbedOptions};
use crate::state::export::escape;
use crate::state::format::megabytes;
use crate::state::link;
use crate::state::shared::ModelRef;
use crate::state::view::{prefix, Recomputed};
use crate::web::model_cache::{absolute_url, file_name};
use crate::web::page::models::{initial_model_url, ModelSource};
use crate::web::page::sharing::{
    current_state, link_to, too_long_for_a_link, Confirm, Sharing, EDITABLE_EMBED_HEIGHT,
    EMBED_HEIGHT, EMBED_WIDTH,
};
use crate::web::page::ui::Ui;
use crate::web::page::view::export::ExportPanel;
use leptos::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

/// The size of a model in words: a link's figure is the sharer's claim until the file loads.
fn size_of(model: &ModelRef) -> String {
    match model.bytes() {
        Some(b) => format!("{}, as the link says; checked once it has loaded", megabytes(b as f64)),
        None => "size unknown until it downloads".into(),
    }
}

/// Above the page: the link's problem and what it asked for beyond the page's bounds, the model
/// to confirm, the snapshot and how its recomputation compares, whether the loaded model is the
/// link's, and why the address holds no state.
#[component]
pub fn LinkNotes(ui: Ui, sharing: Sharing) -> impl IntoView {
    // A model loaded any way (the panel, a dropped file) answers the question.
    Effect::new(move |_| {
        if ui.model.with(Option::is_some) {
            sharing.confirm.set(None);
        }
    });
    let other_model = move || {
        let wanted = sharing.link_model.get_value()?;
        let sha256 = wanted.sha256()?.clone();
        let loaded = ui.model.get()?;
        (loaded.sha256 != sha256.as_str()).then(|| view! {
            <p class="link-note" data-testid="link-model-differs">
                {format!("The link was made with a model whose sha256 begins {}; {} (sha256 {}…) is loaded, so the result may differ.",
                    sha256.short(), loaded.name, prefix(&loaded.sha256, 12))}
            </p>
        })
    };
    let adjusted = move || {
        let notes = sharing.adjusted.get();
        (!notes.is_empty()).then(|| view! {
            <p class="link-note" data-testid="link-adjusted">
                {format!("This link asked for more than the page does, so the page keeps within its bounds: {}.", notes.join("; "))}
            </p>
        })
    };
    view! {
        {move || sharing.problem.get().map(|p| view! { <p class="link-error" data-testid="link-error" role="alert">{p}</p> })}
        {adjusted}
        {move || sharing.confirm.get().map(|confirm| confirm_model(ui, sharing, confirm))}
        <SnapshotNote sharing=sharing/>
        {other_model}
        {move || sharing.unlinked.get().map(|why| view! { <p class="link-note" data-testid="unlinked">{why}</p> })}
    }
}

fn confirm_model(ui: Ui, sharing: Sharing, confirm: Confirm) -> impl IntoView {
    let use_default = move |_| {
        sharing.confirm.set(None);
        ui.load_model(ModelSource::url(&initial_model_url()));
    };
    let Confirm { model, asked_by } = confirm;
    let (question, download, host) = match &model {
        ModelRef::Url { url, .. } => {
            let url = absolute_url(url.as_str());
            let host = web_sys::Url::new(&url).map(|u| u.host()).unwrap_or_default();
            let question = format!(
                "{asked_by} the model {} ({}) from {host}. Download it to compute the result?",
                file_name(&url),
                size_of(&model)
            );
            (question, Some(url), host)
        }
        ModelRef::File { name, sha256, .. } => (
            format!("{asked_by} {} ({}, sha256 {}…), a file on the sharer's disk. If you have it, choose it under Model below.",
                name.as_str(), size_of(&model), sha256.short()),
            None,
            String::new(),
        ),
    };
    view! {
        <p class="confirm link-model" data-testid="link-model" data-host=host
            data-bytes=model.bytes().map(|b| b.to_string()).unwrap_or_default()>
            {question}" "
            {download.map(|url| view! {
                <button data-testid="link-model-download" on:click=move |_| {
                    sharing.confirm.set(None);
                    ui.load_model(ModelSource::Url(url.clone()));
                }>"Download"</button>
            })}
            <button data-testid="link-model-default" on:click=use_default>"Use the page's model"</button>
        </p>
    }
}

#[component]
fn SnapshotNote(sharing: Sharing) -> impl IntoView {
    move || {
        let s = sharing.snapshot.get()?;
        let (state, text, numbers) = match &s.recomputed {
            None => (
                "shown",
                format!(
                    "Snapshot from {}{}",
                    s.source,
                    if s.pending.is_empty() { ".".into() } else { format!("; {}", s.pending) }
                ),
                None,
            ),
            Some(Recomputed::Same { max_diff, tolerance }) => (
                "same",
                format!(
                    "Recomputed: the same as the snapshot from {} (largest score difference {}, tolerance {}).",
                    s.source,
                    short(*max_diff),
                    short(*tolerance)
                ),
                Some((*max_diff, *tolerance)),
            ),
            Some(Recomputed::Differs { max_diff, tolerance }) => (
                "differs",
                format!(
                    "Recomputed: differs from the snapshot from {} by up to {} (tolerance {}): another model or version, or an altered result.",
                    s.source,
                    short(*max_diff),
                    short(*tolerance)
                ),
                Some((*max_diff, *tolerance)),
            ),
            Some(Recomputed::OtherTokens) => (
                "other-tokens",
                format!("Recomputed: the text splits into other tokens than in the snapshot from {} (another model?).", s.source),
                None,
            ),
        };
        let number =
            |f: fn((f32, f32)) -> f32| numbers.map(|n| f(n).to_string()).unwrap_or_default();
        Some(view! {
            <p class="snapshot-note" data-testid="snapshot" data-state=state data-source=s.source.clone()
                data-tokens=s.output.attribution.tokens.len().to_string()
                data-tolerance=number(|n| n.1) data-max-diff=number(|n| n.0)>
                {text}
            </p>
        })
    }
}

fn short(x: f32) -> String {
    crate::state::format::short(x as f64)
}

/// Share link, embed snippet, exports.
#[component]
pub fn SharePanel(ui: Ui, sharing: Sharing) -> impl IntoView {
    let with_snapshot = RwSignal::new(true);
    let editable = RwSignal::new(false);
    let link = RwSignal::new(String::new());
    let copied = RwSignal::new(String::new());
    let snippet = RwSignal::new(String::new());
    let payload = move || link::encode(&current_state(ui, sharing, with_snapshot.get_untracked()));
    let on_share = move |_| {
        let payload = payload();
        if let Some(why) = too_long_for_a_link(&payload) {
            link.set(String::new());
            copied.set(why);
            return;
        }
        let url = link_to(&payload, None);
        link.set(url.clone());
        copied.set(String::new());
        wasm_bindgen_futures::spawn_local(async move {
            copied.set(match copy_to_clipboard(&url).await {
                Ok(()) => "Copied to the clipboard.".into(),
                Err(why) => format!("Not copied ({why}): copy it from the box."),
            });
        });
    };
    let options = RwSignal::new(EmbedOptions::default());
    let on_embed = move |_| {
        let options = options.get_untracked();
        let src = themed(&link_to(&payload(), Some(editable.get_untracked())), options.theme);
        let height = if editable.get_untracked() { EDITABLE_EMBED_HEIGHT } else { EMBED_HEIGHT };
        snippet.set(embed_snippet::snippet(&escape(&src), EMBED_WIDTH, height, options));
    };
    let select_all = |ev: leptos::ev::FocusEvent| {
        if let Some(input) =
            ev.target().and_then(|t| t.dyn_into::<web_sys::HtmlInputElement>().ok())
        {
            input.select();
        }
    };
    view! {
        <section class="share" data-testid="share-panel">
            <div class="control-row">
                <button data-testid="share" on:click=on_share>"Share link"</button>
                <label title="Whoever opens the link sees the map at once, before their browser has the model">
                    <input type="checkbox" data-testid="share-snapshot" prop:checked=move || with_snapshot.get()
                        on:change=move |ev| with_snapshot.set(event_target_checked(&ev))/>
                    " include the result (snapshot)"
                </label>
                <button data-testid="embed" on:click=on_embed>"Embed"</button>
                <label>
                    <input type="checkbox" data-testid="embed-editable" prop:checked=move || editable.get()
                        on:change=move |ev| editable.set(event_target_checked(&ev))/>
                    " editable embed"
                </label>
                <label>"width "
                    <select data-testid="embed-width" on:change=move |ev| {
                        let full = event_target_value(&ev) == "full";
                        options.update(|o| o.full_width = full);
                    }>
                        <option value="full" selected>"the page's column"</option>
                        <option value="fixed">{format!("{EMBED_WIDTH} px")}</option>
                    </select>
                </label>
                <label>"height "
                    <select data-testid="embed-height" on:change=move |ev| {
                        let fits = event_target_value(&ev) == "fits";
                        options.update(|o| o.fits = fits);
                    }>
                        <option value="fits" selected>"fits its content (with a short script)"</option>
                        <option value="fixed">"fixed"</option>
                    </select>
                </label>
                <label>"theme "
                    <select data-testid="embed-theme" on:change=move |ev| {
                        let theme = match event_target_value(&ev).as_str() {
                            "light" => Some("light"),
                            "dark" => Some("dark"),
                            _ => None,
                        };
                        options.update(|o| o.theme = theme);
                    }>
                        <option value="auto" selected>"the reader's"</option>
                        <option value="light">"light"</option>
                        <option value="dark">"dark"</option>
                    </select>
                </label>
            </div>
            <div class="share-link-row">
                <input type="text" readonly class="share-link" data-testid="share-link" placeholder="Share link makes a link to this page's state"
                    prop:value=move || link.get() on:focus=select_all/>
                <span class="hint" data-testid="share-note">{move || copied.get()}</span>
            </div>
            <Show when=move || !snippet.with(String::is_empty)>
                <textarea readonly rows="4" data-testid="embed-snippet" prop:value=move || snippet.get()></textarea>
            </Show>
            <ExportPanel ui=ui sharing=sharing/>
        </section>
    }
}

/// Copies `text` with the asynchronous clipboard API; `Err` says why not (absent outside secure
/// contexts and in some embeds, refused without focus or permission).
async fn copy_to_clipboard(text: &str) -> Result<(), String> {
    let navigator = window().navigator();
    let clipboard = js_sys::Reflect::get(&navigator, &"clipboard".into())
        .ok()
        .filter(|c| c.is_object())
        .ok_or("no clipboard here")?;
    let write_text = js_sys::Reflect::get(&clipboard, &"writeText".into())
        .ok()
        .and_then(|f| f.dyn_into::<js_sys::Function>().ok())
        .ok_or("no clipboard here")?;
    let promise =
        write_text.call1(&clipboard, &text.into()).map_err(|_| "the clipboard refused")?;
    JsFuture::from(js_sys::Promise::from(promise))
        .await
        .map(|_| ())
        .map_err(|_| "the clipboard refused".into())
}

//! Share links: the page's state (model, settings, optionally the result as a snapshot) in the
//! address's fragment, `#s=v1.…` (`crate::state::link`), which browsers never send to a server.
//!
//! Opening a page decides what it starts from: a link's state, else the settings saved by the last
//! visit (`persist`), else the defaults. A link that cannot be decoded shows the codec's message
//! above the default page. A link's snapshot is drawn at once; when the model has recomputed it,
//! the page says how far the two differ. A link made with another model than the page's own asks
//! before downloading anything. `?embed` (or `#embed=…`) opens the same state in the minimal
//! embed view (`embed.rs`).

use super::app::{megabytes, Measurement, Phase, Ui};
use super::export::{escape, ExportPanel};
use super::model_cache::{absolute_url, file_name};
use super::models::{initial_model_url, ModelSource};
use super::persist;
use super::protocol::{ModelSummary, RunOutput};
use crate::state::link;
use crate::state::settings::Settings;
use crate::state::shared::{ModelRef, SharedState, Snapshot};
use leptos::prelude::*;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

/// `#s=…`: the page's state. `#embed=…`: the same state, opened as an embed.
const STATE_KEY: &str = "s";
const EMBED_KEY: &str = "embed";
/// The size of the iframe in the embed snippet.
const EMBED_WIDTH: u32 = 720;
const EMBED_HEIGHT: u32 = 300;
const EDITABLE_EMBED_HEIGHT: u32 = 460;

/// What the page was opened with and the snapshot it shows; all handles are `Copy`.
#[derive(Clone, Copy)]
pub struct Sharing {
    /// The minimal view for iframes.
    pub embed: bool,
    /// An embed with the text editor (`&editable`).
    pub editable: bool,
    /// Start the worker (and load the page's model) at once. False while a link's model waits
    /// for the user's word, and for an embed that only shows its snapshot.
    pub start_now: bool,
    /// A model the opened link names that is not the page's own: nothing downloads until the
    /// user chooses.
    pub confirm: RwSignal<Option<ModelRef>>,
    /// The model the opened state names: shared again until a model has loaded, and compared
    /// with the one that loads.
    link_model: StoredValue<Option<ModelRef>>,
    pub snapshot: RwSignal<Option<ShownSnapshot>>,
    /// Why a link or a file could not be opened.
    pub problem: RwSignal<Option<String>>,
}

/// A result shown without computing it: a link's snapshot or a loaded export.
#[derive(Clone, Debug, PartialEq)]
pub struct ShownSnapshot {
    /// "the link", or the file's name.
    pub source: String,
    pub output: RunOutput,
    /// What the page says while it is shown ("recomputing…", or how to recompute).
    pub pending: &'static str,
    /// Recomputed scores within this of the snapshot's are the same result (the link's
    /// quantisation step).
    pub tolerance: f32,
    pub recomputed: Option<Recomputed>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Recomputed {
    /// The largest |score difference| between the recomputed map and the snapshot.
    Compared { max_diff: f32 },
    /// The recomputation tokenized the text differently: another model or tokenizer.
    OtherTokens,
}

impl Sharing {
    /// Reads the address (and the saved settings) into `ui` before anything is drawn.
    pub fn open(ui: Ui) -> Self {
        let location = window().location();
        let search =
            web_sys::UrlSearchParams::new_with_str(&location.search().unwrap_or_default()).ok();
        let flag = |name: &str| search.as_ref().is_some_and(|s| s.has(name));
        let (key, payload) = fragment_state(&location.hash().unwrap_or_default()).unzip();
        let mut sharing = Sharing {
            embed: flag(EMBED_KEY) || key == Some(EMBED_KEY),
            editable: flag("editable"),
            start_now: true,
            confirm: RwSignal::new(None),
            link_model: StoredValue::new(None),
            snapshot: RwSignal::new(None),
            problem: RwSignal::new(None),
        };
        match payload.map(|p| link::decode::<SharedState>(&p)) {
            Some(Ok((state, _))) => sharing.restore(ui, state),
            Some(Err(e)) => sharing.problem.set(Some(e.to_string())),
            None if !sharing.embed => {
                if let Some(settings) = persist::stored_settings() {
                    ui.settings.set(settings);
                }
            }
            None => {}
        }
        sharing.watch_recomputation(ui);
        // A link pasted into the address bar of an open page changes only the fragment, and the
        // browser does not reload: reload, so the page opens it as it opens any link.
        // (`replaceState` fires no `hashchange`, so the page's own updates do not reload it.)
        window_event_listener(leptos::ev::hashchange, |_| {
            let _ = window().location().reload();
        });
        sharing
    }

    fn restore(&mut self, ui: Ui, state: SharedState) {
        let SharedState { model, settings, snapshot } = state;
        let shown = snapshot.map(|s| s.attribution(&settings.params).map(|a| (a, s.scores.step())));
        ui.settings.set(settings);
        let ask = !is_page_model(&model);
        match shown {
            // An embed that only shows its snapshot never loads a model.
            Some(Ok((attribution, step))) if self.embed && !self.editable => {
                self.start_now = false;
                self.show(ui, "the link".into(), output_of(attribution), step, "");
            }
            Some(Ok((attribution, step))) => {
                let pending =
                    if ask { "choose the model above to recompute it." } else { "recomputing…" };
                self.show(ui, "the link".into(), output_of(attribution), step, pending);
            }
            Some(Err(e)) => {
                self.problem
                    .set(Some(format!("The result in this share link cannot be shown: {e}. The page computes it again.")));
            }
            None => {}
        }
        if self.start_now && ask {
            self.start_now = false;
            ui.phase.set(Phase::Ready);
            ui.message
                .set("This link was made with another model than the page's: choose below.".into());
            self.confirm.set(Some(model.clone()));
        }
        self.link_model.set_value(Some(model));
    }

    /// Shows `output` as a result nobody computed here; the next recomputation replaces it and
    /// is compared with it.
    pub fn show(
        self,
        ui: Ui,
        source: String,
        output: RunOutput,
        tolerance: f32,
        pending: &'static str,
    ) {
        let measured = output.attribution.faithfulness.clone().map(|report| {
            (output.attribution.method.clone(), Measurement::Measured { report, ms: 0.0 })
        });
        self.snapshot.set(Some(ShownSnapshot {
            source,
            output: output.clone(),
            pending,
            tolerance,
            recomputed: None,
        }));
        ui.row.set(None);
        ui.timings.set(None);
        ui.faithfulness.set(measured.into_iter().collect());
        ui.result.set(Some(output));
    }

    /// Compares the first result computed after a snapshot with it. The note goes when a later
    /// result replaces that one, or when the first answers another question (the settings
    /// changed meanwhile).
    fn watch_recomputation(self, ui: Ui) {
        Effect::new(move |_| {
            let Some(result) = ui.result.get() else { return };
            self.snapshot.update(|shown| {
                let Some(s) = shown.as_mut().filter(|s| s.output != result) else { return };
                let (old, new) = (&s.output.attribution, &result.attribution);
                let same_question = (&old.method, old.target.id, old.target_kind)
                    == (&new.method, new.target.id, new.target_kind);
                if s.recomputed.is_some() || !same_question {
                    *shown = None;
                    return;
                }
                let ids = |a: &crate::engine::Attribution| {
                    a.tokens.iter().map(|t| t.id).collect::<Vec<_>>()
                };
                s.recomputed = Some(match ids(old) == ids(new) {
                    true => Recomputed::Compared {
                        max_diff: old
                            .scores
                            .iter()
                            .zip(&new.scores)
                            .fold(0f32, |m, (a, b)| m.max((a - b).abs())),
                    },
                    false => Recomputed::OtherTokens,
                });
            });
        });
    }
}

/// `(key, payload)` of a fragment `#s=…` or `#embed=…` (other `&`-separated parts are ignored).
fn fragment_state(hash: &str) -> Option<(&'static str, String)> {
    hash.trim_start_matches('#').split('&').find_map(|part| {
        let (key, value) = part.split_once('=')?;
        [STATE_KEY, EMBED_KEY].into_iter().find(|k| *k == key).map(|k| (k, value.to_string()))
    })
}

fn output_of(attribution: crate::engine::Attribution) -> RunOutput {
    RunOutput { attribution, baseline_value: None, compared: Vec::new(), agreements: Vec::new() }
}

/// The page's address without query or fragment.
fn page_address() -> String {
    let location = window().location();
    format!("{}{}", location.origin().unwrap_or_default(), location.pathname().unwrap_or_default())
}

/// The directory the page is served from; URLs under it are shared relative to it.
fn page_directory() -> String {
    let address = page_address();
    address[..address.rfind('/').map_or(address.len(), |i| i + 1)].to_string()
}

/// Whether `model` is the model the page loads by itself (no download to confirm).
fn is_page_model(model: &ModelRef) -> bool {
    matches!(model, ModelRef::Url { url, .. } if absolute_url(url) == absolute_url(&initial_model_url()))
}

fn model_ref_of(model: &ModelSummary) -> ModelRef {
    let (sha256, bytes) = (model.sha256.clone(), model.bytes as u64);
    match &model.url {
        Some(url) => {
            let relative = url.strip_prefix(&page_directory()).unwrap_or(url).to_string();
            ModelRef::Url { url: relative, sha256: Some(sha256), bytes: Some(bytes) }
        }
        None => ModelRef::File { name: model.name.clone(), sha256, bytes },
    }
}

/// The page's state now; `with_snapshot` adds the shown result.
pub fn current_state(ui: Ui, sharing: Sharing, with_snapshot: bool) -> SharedState {
    let model = ui
        .model
        .with_untracked(|m| m.as_ref().map(model_ref_of))
        .or_else(|| sharing.link_model.get_value());
    let model = model.unwrap_or_else(|| ModelRef::Url {
        url: initial_model_url(),
        sha256: None,
        bytes: None,
    });
    let snapshot = match with_snapshot {
        true => ui.result.with_untracked(|r| {
            r.as_ref().map(|r| Snapshot::of(&with_faithfulness(ui, r).attribution))
        }),
        false => None,
    };
    SharedState { model, settings: ui.settings.get_untracked(), snapshot }
}

/// The shown result with the faithfulness of its map when it was measured (the worker reports it
/// apart from the scores).
pub fn with_faithfulness(ui: Ui, output: &RunOutput) -> RunOutput {
    let mut output = output.clone();
    if let Some(Measurement::Measured { report, .. }) = ui.measurement(&output.attribution.method) {
        output.attribution.faithfulness = Some(report);
    }
    output
}

/// Rewrites the page's own fragment to `#s=payload` without a new history entry.
pub fn replace_fragment(payload: &str) {
    if let Ok(history) = window().history() {
        let _ = history.replace_state_with_url(
            &JsValue::NULL,
            "",
            Some(&format!("#{STATE_KEY}={payload}")),
        );
    }
}

fn link_to(state: &SharedState, embed: Option<bool>) -> String {
    let query = match embed {
        None => "",
        Some(false) => "?embed",
        Some(true) => "?embed&editable",
    };
    format!("{}{query}#{STATE_KEY}={}", page_address(), link::encode(state))
}

/// The full page with the state shown (for the embed's "open in Salient").
pub fn full_page_link(ui: Ui, sharing: Sharing) -> String {
    let with_snapshot = ui.result.with(Option::is_some);
    ui.settings.track();
    link_to(&current_state(ui, sharing, with_snapshot), None)
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

/// The size of a model in words, when the state says it.
fn size_of(model: &ModelRef) -> String {
    model.bytes().map(|b| megabytes(b as f64)).unwrap_or_else(|| "size unknown".into())
}

/// Above the page: the link's problem, the model to confirm, the snapshot and how its
/// recomputation compares, and whether the loaded model is the link's.
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
        let sha256 = wanted.sha256()?.to_string();
        let loaded = ui.model.get()?;
        (loaded.sha256 != sha256).then(|| view! {
            <p class="link-note" data-testid="link-model-differs">
                {format!("The link was made with a model whose sha256 begins {}; {} (sha256 {}…) is loaded, so the result may differ.",
                    &sha256[..12.min(sha256.len())], loaded.name, &loaded.sha256[..12.min(loaded.sha256.len())])}
            </p>
        })
    };
    view! {
        {move || sharing.problem.get().map(|p| view! { <p class="link-error" data-testid="link-error" role="alert">{p}</p> })}
        {move || sharing.confirm.get().map(|model| confirm_model(ui, sharing, model))}
        <SnapshotNote sharing=sharing/>
        {other_model}
    }
}

fn confirm_model(ui: Ui, sharing: Sharing, model: ModelRef) -> impl IntoView {
    let use_default = move |_| {
        sharing.confirm.set(None);
        ui.load_model(ModelSource::url(&initial_model_url()));
    };
    let (question, download) = match &model {
        ModelRef::Url { url, .. } => {
            let url = absolute_url(url);
            let host = web_sys::Url::new(&url).map(|u| u.host()).unwrap_or_default();
            let question = format!("This link was made with the model {} ({}) from {host}. Download it to compute the result?",
                file_name(&url), size_of(&model));
            (question, Some(url))
        }
        ModelRef::File { name, sha256, .. } => (
            format!("This link was made with {name} ({}, sha256 {}…), a file on the sharer's disk. If you have it, choose it under Model below.",
                size_of(&model), &sha256[..12.min(sha256.len())]),
            None,
        ),
    };
    view! {
        <p class="confirm link-model" data-testid="link-model" data-bytes=model.bytes().map(|b| b.to_string()).unwrap_or_default()>
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
        let step = short(s.tolerance);
        let (state, text) = match &s.recomputed {
            None => (
                "shown",
                format!(
                    "Snapshot from {}{}",
                    s.source,
                    if s.pending.is_empty() { ".".into() } else { format!("; {}", s.pending) }
                ),
            ),
            Some(Recomputed::Compared { max_diff }) if *max_diff <= s.tolerance => (
                "same",
                format!(
                    "Recomputed: the same as the snapshot from {} (largest score difference {}, tolerance {step}).",
                    s.source,
                    short(*max_diff)
                ),
            ),
            Some(Recomputed::Compared { max_diff }) => (
                "differs",
                format!(
                    "Recomputed: differs from the snapshot from {} by up to {} (tolerance {step}): another model or version?",
                    s.source,
                    short(*max_diff)
                ),
            ),
            Some(Recomputed::OtherTokens) => (
                "other-tokens",
                format!("Recomputed: the text splits into other tokens than in the snapshot from {} (another model?).", s.source),
            ),
        };
        let max_diff = match s.recomputed {
            Some(Recomputed::Compared { max_diff }) => max_diff.to_string(),
            _ => String::new(),
        };
        Some(view! {
            <p class="snapshot-note" data-testid="snapshot" data-state=state data-source=s.source.clone()
                data-tokens=s.output.attribution.tokens.len().to_string() data-tolerance=s.tolerance.to_string() data-max-diff=max_diff>
                {text}
            </p>
        })
    }
}

fn short(x: f32) -> String {
    crate::state::colour::short(x as f64)
}

/// Share link, embed snippet, exports.
#[component]
pub fn SharePanel(ui: Ui, sharing: Sharing) -> impl IntoView {
    let with_snapshot = RwSignal::new(true);
    let editable = RwSignal::new(false);
    let link = RwSignal::new(String::new());
    let copied = RwSignal::new(String::new());
    let snippet = RwSignal::new(String::new());
    let state = move || current_state(ui, sharing, with_snapshot.get_untracked());
    let on_share = move |_| {
        let url = link_to(&state(), None);
        link.set(url.clone());
        copied.set(String::new());
        wasm_bindgen_futures::spawn_local(async move {
            copied.set(match copy_to_clipboard(&url).await {
                Ok(()) => "Copied to the clipboard.".into(),
                Err(why) => format!("Not copied ({why}): copy it from the box."),
            });
        });
    };
    let on_embed = move |_| {
        let src = link_to(&state(), Some(editable.get_untracked()));
        let height = if editable.get_untracked() { EDITABLE_EMBED_HEIGHT } else { EMBED_HEIGHT };
        snippet.set(format!(
            "<iframe src=\"{}\" width=\"{EMBED_WIDTH}\" height=\"{height}\" style=\"border:0\" title=\"Salient: input attribution\" loading=\"lazy\"></iframe>",
            escape(&src)
        ));
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
            <h2>"Share, embed, export"</h2>
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
            </div>
            <div class="share-link-row">
                <input type="text" readonly class="share-link" data-testid="share-link" placeholder="Share link makes a link to this page's state"
                    prop:value=move || link.get() on:focus=select_all/>
                <span class="hint" data-testid="share-note">{move || copied.get()}</span>
            </div>
            <Show when=move || !snippet.with(String::is_empty)>
                <textarea readonly rows="3" data-testid="embed-snippet" prop:value=move || snippet.get()></textarea>
            </Show>
            <ExportPanel ui=ui sharing=sharing/>
        </section>
    }
}

/// Imported settings and result, shown as a snapshot.
pub fn show_saved(ui: Ui, sharing: Sharing, source: String, settings: Settings, output: RunOutput) {
    let max = output.attribution.scores.iter().fold(0f32, |m, s| m.max(s.abs()));
    ui.settings.set(settings);
    sharing.problem.set(None);
    ui.message
        .set(format!("Showing the result loaded from {source}; press Run to compute it here."));
    // Full-precision scores: the same result up to float rounding on another machine.
    sharing.show(ui, source, output, max * 1e-4, "press Run to compute it here.");
}

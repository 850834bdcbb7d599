//! Share links: the page's state (model, settings, optionally the result as a snapshot) in the
//! address's fragment, `#s=v1.…` (`crate::state::link`), which browsers never send to a server.
//!
//! Opening a page decides what it starts from: a link's state, else the settings saved by the last
//! visit (`persist`), else the defaults. A link that cannot be opened shows why above the page,
//! which keeps the saved settings. A link's snapshot is drawn at once; when the model has
//! recomputed it, the page says whether the two agree. A model from anywhere but the page's own
//! origin (a link's, or `?model=`) loads only once the person agrees. `embed.html` opens the same
//! state in the minimal embed view (`embed.rs`).

use crate::state::link::{self, MAX_LINK_CHARS};
use crate::state::report_card::SharedReport;
use crate::state::result::{Checked, RunOutput};
use crate::state::settings::Settings;
use crate::state::shared::{
    open_link, ModelRef, ModelUrl, Quantised, Sha256, SharedState, Snapshot,
};
use crate::state::view::{compare_recomputed, method_label, Recomputed};
use crate::web::address::{page_directory, EMBED_KEY, EMBED_PAGE};
use crate::web::model_cache::{absolute_url, file_name};
use crate::web::page::models::{foreign_query_model, initial_model_url};
use crate::web::page::storage::stored_settings;
use crate::web::page::ui::{Measurement, Phase, ReportState, Ui};
use crate::web::protocol::ModelSummary;
use leptos::prelude::*;
use wasm_bindgen::prelude::*;

/// `#s=…`: the page's state. `#embed=…` (older embeds): the same state, opened as an embed.
const STATE_KEY: &str = "s";
/// The size of the iframe in the embed snippet.
pub const EMBED_WIDTH: u32 = 720;
pub const EMBED_HEIGHT: u32 = 300;
pub const EDITABLE_EMBED_HEIGHT: u32 = 460;

/// A model that loads only once the person agrees, and why the page asks.
#[derive(Clone, Debug, PartialEq)]
pub struct Confirm {
    pub model: ModelRef,
    /// "This link was made with", "This page's address asks for".
    pub asked_by: &'static str,
}

/// What the page was opened with and the snapshot it shows; all handles are `Copy`.
#[derive(Clone, Copy)]
pub struct Sharing {
    /// The minimal view for iframes.
    pub embed: bool,
    /// An embed with the text editor (`?editable`).
    pub editable: bool,
    /// Start the worker (and load the page's model) at once. False while a model waits for the
    /// person's word, and for an embed that only shows its snapshot.
    pub start_now: bool,
    /// A model from another origin: nothing downloads until the person chooses.
    pub confirm: RwSignal<Option<Confirm>>,
    /// The model the opened state names: shared again until a model has loaded, and compared
    /// with the one that loads.
    pub link_model: StoredValue<Option<ModelRef>>,
    pub snapshot: RwSignal<Option<ShownSnapshot>>,
    /// Why a link or a file could not be opened.
    pub problem: RwSignal<Option<String>>,
    /// What the opened link asked for beyond the page's bounds, in words (the page keeps within
    /// them).
    pub adjusted: RwSignal<Vec<String>>,
    /// Why the page's address holds no state now (the text is too long for a link).
    pub unlinked: RwSignal<Option<String>>,
}

/// A result shown without computing it: a link's snapshot or a loaded export.
#[derive(Clone, Debug, PartialEq)]
pub struct ShownSnapshot {
    /// "the link", or the file's name.
    pub source: String,
    pub output: Checked<RunOutput>,
    /// What the page says while it is shown ("recomputing…", or how to recompute).
    pub pending: String,
    /// How exact the shown scores are, relative to their largest |score|: half a quantisation
    /// step for a link's snapshot, 0 for a file's full-precision scores.
    pub resolution: f32,
    pub recomputed: Option<Recomputed>,
}

impl Sharing {
    /// Reads the address (and the saved settings) into `ui` before anything is drawn. `embed`:
    /// the page is the embed view.
    pub fn open(ui: Ui, embed: bool) -> Self {
        let location = window().location();
        let search =
            web_sys::UrlSearchParams::new_with_str(&location.search().unwrap_or_default()).ok();
        let payload = fragment_state(&location.hash().unwrap_or_default());
        // `?theme=light|dark` (an embed following its host page) overrides the system's scheme.
        let theme = search.as_ref().and_then(|s| s.get("theme"));
        if let (Some(theme @ ("light" | "dark")), Some(root)) =
            (theme.as_deref(), document().document_element())
        {
            let _ = root.set_attribute("data-theme", theme);
        }
        let mut sharing = Sharing {
            embed,
            editable: search.as_ref().is_some_and(|s| s.has("editable")),
            start_now: true,
            confirm: RwSignal::new(None),
            link_model: StoredValue::new(None),
            snapshot: RwSignal::new(None),
            problem: RwSignal::new(None),
            adjusted: RwSignal::new(Vec::new()),
            unlinked: RwSignal::new(None),
        };
        match payload.map(|p| open_link(&p)) {
            Some(Ok((state, adjusted))) => {
                sharing.adjusted.set(adjusted);
                sharing.restore(ui, state);
            }
            Some(Err(e)) => {
                sharing.problem.set(Some(e.to_string()));
                // The person's own work stays: what this browser saved, as without a link.
                sharing.restore_saved(ui);
            }
            None => sharing.restore_saved(ui),
        }
        if sharing.start_now && sharing.confirm.with_untracked(Option::is_none) {
            sharing.ask_for_query_model(ui);
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

    /// The settings saved by the last visit (never in an embed, which leaves them alone).
    fn restore_saved(&self, ui: Ui) {
        if let Some(settings) = stored_settings().filter(|_| !self.embed) {
            ui.settings.set(settings);
        }
    }

    /// `?model=` naming a model on another origin: asked about like a link's model.
    fn ask_for_query_model(&mut self, ui: Ui) {
        let Some(url) = foreign_query_model() else { return };
        self.start_now = false;
        ui.phase.set(Phase::Ready);
        match ModelUrl::try_from(url) {
            Ok(url) => {
                ui.message
                    .set("This address asks for a model from another site: choose below.".into());
                let model = ModelRef::Url { url, sha256: None, bytes: None };
                self.confirm.set(Some(Confirm { model, asked_by: "This page's address asks for" }));
            }
            Err(e) => {
                ui.message.set("No model is loaded: choose one under Model.".into());
                self.problem.set(Some(format!("The address's model= cannot be loaded: {e}.")));
            }
        }
    }

    fn restore(&mut self, ui: Ui, state: SharedState) {
        let SharedState { model, settings, snapshot, report } = state;
        match report.map(SharedReport::checked) {
            Some(Ok(SharedReport { report, ms, backend })) => {
                ui.report.set(Some(ReportState::Done { report: Box::new(report), ms, backend }))
            }
            Some(Err(why)) => {
                self.problem.set(Some(format!("The link's report card cannot be shown: {why}.")))
            }
            None => {}
        }
        let shown = snapshot.map(|s| s.output(&settings.params));
        ui.settings.set(settings);
        let ask = !is_page_model(&model);
        let source = "the link".to_string();
        match shown {
            // An embed that only shows its snapshot never loads a model: it says what the link
            // claims computed it.
            Some(Ok(output)) if self.embed && !self.editable => {
                self.start_now = false;
                let pending = format!(
                    "not recomputed here: {} with {}, as the link says",
                    method_label(&output.attribution.method),
                    model_words(&model)
                );
                self.show(ui, source, output, Quantised::RESOLUTION, pending);
            }
            Some(Ok(output)) => {
                let pending =
                    if ask { "choose the model above to recompute it." } else { "recomputing…" };
                self.show(ui, source, output, Quantised::RESOLUTION, pending.into());
            }
            Some(Err(e)) => {
                self.problem.set(Some(format!(
                    "The result in this share link cannot be shown: {e}. The page computes it again."
                )));
            }
            None => {}
        }
        if self.start_now && ask {
            self.start_now = false;
            ui.phase.set(Phase::Ready);
            ui.message
                .set("This link was made with another model than the page's: choose below.".into());
            let confirm = Confirm { model: model.clone(), asked_by: "This link was made with" };
            self.confirm.set(Some(confirm));
        }
        self.link_model.set_value(Some(model));
    }

    /// Shows `output` as a result nobody computed here; the next recomputation replaces it and
    /// is compared with it.
    pub fn show(
        self,
        ui: Ui,
        source: String,
        output: Checked<RunOutput>,
        resolution: f32,
        pending: String,
    ) {
        let measured = output.attribution.faithfulness.clone().map(|report| {
            (output.attribution.method.clone(), Measurement::Measured { report, ms: 0.0 })
        });
        self.snapshot.set(Some(ShownSnapshot {
            source,
            output: output.clone(),
            pending,
            resolution,
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
                s.recomputed = Some(compare_recomputed(old, new, s.resolution));
            });
        });
    }
}

/// A model as a person recognises it: its file name, and the start of its sha256 when known.
fn model_words(model: &ModelRef) -> String {
    let name = match model {
        ModelRef::Url { url, .. } => file_name(url.as_str()),
        ModelRef::File { name, .. } => name.as_str().to_string(),
    };
    match model.sha256() {
        Some(sha256) => format!("{name} (sha256 {}…)", sha256.short()),
        None => name,
    }
}

/// The payload of a fragment `#s=…` or `#embed=…` (other `&`-separated parts are ignored).
fn fragment_state(hash: &str) -> Option<String> {
    hash.trim_start_matches('#').split('&').find_map(|part| {
        let (key, value) = part.split_once('=')?;
        [STATE_KEY, EMBED_KEY].contains(&key).then(|| value.to_string())
    })
}

/// Whether `model` is the model the page loads by itself (no download to confirm).
fn is_page_model(model: &ModelRef) -> bool {
    matches!(model, ModelRef::Url { url, .. } if absolute_url(url.as_str()) == absolute_url(&initial_model_url()))
}

fn model_ref_of(model: &ModelSummary) -> Option<ModelRef> {
    let (sha256, bytes) = (Sha256::try_from(model.sha256.clone()).ok(), model.bytes as u64);
    match &model.url {
        Some(url) => {
            let relative = url.strip_prefix(&page_directory()).unwrap_or(url).to_string();
            let url = ModelUrl::try_from(relative).ok()?;
            Some(ModelRef::Url { url, sha256, bytes: Some(bytes) })
        }
        None => {
            let name = model.name.clone().try_into().ok()?;
            Some(ModelRef::File { name, sha256: sha256?, bytes })
        }
    }
}

/// The page's state now; `with_snapshot` adds the shown result.
pub fn current_state(ui: Ui, sharing: Sharing, with_snapshot: bool) -> SharedState {
    let model = ui
        .model
        .with_untracked(|m| m.as_ref().and_then(model_ref_of))
        .or_else(|| sharing.link_model.get_value())
        .or_else(|| {
            let url = ModelUrl::try_from(initial_model_url()).ok()?;
            Some(ModelRef::Url { url, sha256: None, bytes: None })
        });
    let model = model.unwrap_or_else(|| ModelRef::Url {
        url: ModelUrl::try_from(crate::state::default_model::url())
            .expect("the default model's URL is a plain relative path"),
        sha256: None,
        bytes: None,
    });
    let snapshot = match with_snapshot {
        true => ui.result.with_untracked(|r| {
            r.as_ref().map(|r| Snapshot::of(&with_faithfulness(ui, r).attribution))
        }),
        false => None,
    };
    let report = match with_snapshot {
        true => ui.report.with_untracked(|r| match r {
            Some(ReportState::Done { report, ms, backend }) => {
                Some(SharedReport { report: (**report).clone(), ms: *ms, backend: *backend })
            }
            _ => None,
        }),
        false => None,
    };
    SharedState { model, settings: ui.settings.get_untracked(), snapshot, report }
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

/// Rewrites the page's own fragment to `#s=payload` (or removes it: `None`) without a new
/// history entry.
pub fn replace_fragment(payload: Option<&str>) {
    let location = window().location();
    let without = format!(
        "{}{}",
        location.pathname().unwrap_or_default(),
        location.search().unwrap_or_default()
    );
    let address = match payload {
        Some(payload) => format!("#{STATE_KEY}={payload}"),
        None => without,
    };
    if let Ok(history) = window().history() {
        let _ = history.replace_state_with_url(&JsValue::NULL, "", Some(&address));
    }
}

/// Why `payload` cannot travel in a link, if it cannot.
pub fn too_long_for_a_link(payload: &str) -> Option<String> {
    (payload.len() > MAX_LINK_CHARS).then(|| {
        format!(
            "This state is too long for a link ({} characters encoded, at most {MAX_LINK_CHARS}): \
             the text is kept in this browser and comes back on reload; to share it, download it \
             as JSON under “Share, embed, export”.",
            payload.len()
        )
    })
}

/// A link to `state`: the full page, or (`Some(editable)`) the embed view.
pub fn link_to(payload: &str, embed: Option<bool>) -> String {
    let page = match embed {
        None => String::new(),
        Some(false) => EMBED_PAGE.to_string(),
        Some(true) => format!("{EMBED_PAGE}?editable"),
    };
    format!("{}{page}#{STATE_KEY}={payload}", page_directory())
}

/// The full page with the state shown (for the embed's "open in Salient").
pub fn full_page_link(ui: Ui, sharing: Sharing) -> String {
    let with_snapshot = ui.result.with(Option::is_some);
    ui.settings.track();
    link_to(&link::encode(&current_state(ui, sharing, with_snapshot)), None)
}

/// Imported settings and result, shown as a snapshot. Its scores are full precision: the same
/// result recomputed differs only by the backends' rounding.
pub fn show_saved(
    ui: Ui,
    sharing: Sharing,
    source: String,
    settings: Settings,
    output: Checked<RunOutput>,
) {
    ui.settings.set(settings);
    sharing.problem.set(None);
    ui.message
        .set(format!("Showing the result loaded from {source}; press Run to compute it here."));
    sharing.show(ui, source, output, 0.0, "press Run to compute it here.".into());
}

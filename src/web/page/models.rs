//! "Bring your own model": which model the page loads and the panel to choose another. A model
//! comes from a preset (`models.json`), any URL, or a file picked or dropped on the page. The
//! panel shows what is loaded (name, family, size, sha256, where from), the download's progress
//! with its speed and a cancel button, and the models kept in the model cache.
//!
//! `ModelLoader` remembers which model the worker holds, so that a replaced worker (after Cancel,
//! a crash or a superseded faithfulness check) reloads that one, and which one is loading, so
//! that a failed load can fall back to it.

use crate::state::settings::MAX_TOKENS;
use crate::state::view::prefix;
use crate::web::model_cache::{self, absolute_url, file_name, CachedModel};
use crate::web::page::ui::{megabytes, Ui};
use crate::web::protocol::{LoadedFrom, ModelSummary, ToWorker};
use crate::web::worker::memory_guard::human_bytes;
use leptos::ev;
use leptos::prelude::*;
use serde::Deserialize;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

/// Served with the page (see `index.html`), loaded unless `?model=` names another.
pub const DEFAULT_MODEL: &str = "models/SmolLM2-135M-Instruct.Q4_1.gguf";
/// The preset list, copied into the bundle from `public/models.json`.
const PRESETS_URL: &str = "models.json";

#[derive(Clone)]
pub enum ModelSource {
    /// An absolute URL.
    Url(String),
    File(web_sys::File),
}

impl ModelSource {
    pub fn url(url: &str) -> Self {
        ModelSource::Url(absolute_url(url))
    }

    /// The file name a person recognises.
    pub fn name(&self) -> String {
        match self {
            ModelSource::Url(url) => file_name(url),
            ModelSource::File(file) => file.name(),
        }
    }

    pub fn message(&self) -> ToWorker {
        match self {
            ModelSource::Url(url) => ToWorker::Load { url: url.clone() },
            ModelSource::File(file) => ToWorker::LoadFile { file: file.clone() },
        }
    }
}

impl PartialEq for ModelSource {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (ModelSource::Url(a), ModelSource::Url(b)) => a == b,
            (ModelSource::File(a), ModelSource::File(b)) => a == b, // the same File object
            _ => false,
        }
    }
}

/// One entry of `models.json`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct Preset {
    pub name: String,
    pub url: String,
    pub architecture: String,
    /// The file's size, approximate unless `verified`.
    pub bytes: f64,
    /// Served with the page: loads without asking.
    #[serde(default)]
    pub default: bool,
    /// Whether the URL and size were checked against the file.
    #[serde(default)]
    pub verified: bool,
}

#[derive(Deserialize)]
struct PresetList {
    models: Vec<Preset>,
}

/// What a failed load leaves.
pub enum Fallback {
    /// The worker still holds the model loaded before.
    KeepLoaded,
    /// The worker was replaced during the load: load the model it held before.
    Reload(ModelSource),
    NoModel,
}

/// Which model the page wants and what it shows about loading; all handles are `Copy`.
#[derive(Clone, Copy)]
pub struct ModelLoader {
    /// The model the worker holds, or held before it was replaced.
    current: StoredValue<Option<ModelSource>, LocalStorage>,
    /// The model being loaded.
    loading: StoredValue<Option<ModelSource>, LocalStorage>,
    /// A failed load's message, shown again once the previous model has reloaded.
    failure: StoredValue<Option<String>>,
    /// The person cancelled the load in progress: its end is not an error.
    cancelling: StoredValue<bool>,
    /// The Cache API's absence is said once, with the first model it concerns.
    cache_note_shown: StoredValue<bool>,
    /// Page time (ms) when the bytes started to arrive.
    started_ms: StoredValue<f64>,
    /// Where the bytes being read come from; `None` when no read is in progress.
    pub reading: RwSignal<Option<LoadedFrom>>,
    /// Bytes per second of the read in progress.
    pub speed: RwSignal<Option<f64>>,
    pub presets: RwSignal<Vec<Preset>>,
    pub cached: RwSignal<Option<Result<Vec<CachedModel>, String>>>,
    /// A preset waiting for the person to confirm its download.
    pub confirming: RwSignal<Option<Preset>>,
}

impl ModelLoader {
    pub fn new() -> Self {
        let loader = ModelLoader {
            current: StoredValue::new_local(None),
            loading: StoredValue::new_local(None),
            failure: StoredValue::new(None),
            cancelling: StoredValue::new(false),
            cache_note_shown: StoredValue::new(false),
            started_ms: StoredValue::new(0.0),
            reading: RwSignal::new(None),
            speed: RwSignal::new(None),
            presets: RwSignal::new(Vec::new()),
            cached: RwSignal::new(None),
            confirming: RwSignal::new(None),
        };
        wasm_bindgen_futures::spawn_local(async move {
            match fetch_presets().await {
                Ok(presets) => loader.presets.set(presets),
                Err(why) => web_sys::console::warn_1(&format!("no model presets: {why}").into()),
            }
        });
        loader.refresh_cached();
        loader
    }

    /// The model a fresh worker should load: the one loading, else the one held before, else
    /// `?model=` or the default.
    pub fn next_source(self) -> ModelSource {
        let source = self
            .loading
            .get_value()
            .or_else(|| self.current.get_value())
            .unwrap_or_else(|| ModelSource::url(&initial_model_url()));
        self.loading.set_value(Some(source.clone()));
        self.cancelling.set_value(false);
        source
    }

    pub fn begin(self, source: ModelSource) {
        self.failure.set_value(None);
        self.cancelling.set_value(false);
        self.loading.set_value(Some(source));
    }

    /// Whether there is a read to cancel; marks it as cancelled by the person.
    pub fn cancel(self) -> bool {
        let reading = self.reading.get_untracked().is_some();
        self.cancelling.set_value(reading);
        reading
    }

    /// Whether the load that just ended was cancelled by the person.
    pub fn cancelled(self) -> bool {
        self.cancelling.get_value()
    }

    /// The status line when the worker starts reading.
    pub fn reading_started(self, name: &str, from: LoadedFrom, total: Option<f64>) -> String {
        self.started_ms.set_value(now_ms());
        self.reading.set(Some(from));
        self.speed.set(None);
        let size = total.map(|t| format!(" ({})", megabytes(t))).unwrap_or_default();
        match from {
            LoadedFrom::Network => format!("Downloading {name}{size}…"),
            LoadedFrom::Cache => format!("Reading {name}{size} from the model cache…"),
            LoadedFrom::LocalFile => format!("Reading {name}{size} from your disk…"),
        }
    }

    /// The status line for a progress report, which also updates the speed.
    pub fn progress_text(self, loaded: f64, total: Option<f64>) -> String {
        let seconds = (now_ms() - self.started_ms.get_value()) / 1000.0;
        let speed = (seconds > 0.0).then(|| loaded / seconds);
        self.speed.set(speed);
        let verb = match self.reading.get_untracked() {
            Some(LoadedFrom::Network) | None => "Downloading the model",
            Some(_) => "Reading the model",
        };
        let of_total = total.map(|t| format!(" of {}", megabytes(t))).unwrap_or_default();
        let percent =
            total.map(|t| format!(" ({:.0}%)", 100.0 * loaded / t.max(1.0))).unwrap_or_default();
        let rate = speed.map(|s| format!(" · {:.1} MB/s", s / 1e6)).unwrap_or_default();
        format!("{verb}: {}{of_total}{percent}{rate}", megabytes(loaded))
    }

    /// Records `model` as the one the worker holds. Returns the status line, as an error when the
    /// model was reloaded after another failed to load.
    pub fn loaded(self, model: &ModelSummary, load_ms: f64) -> Result<String, String> {
        self.current.set_value(self.loading.get_value());
        self.loading.set_value(None);
        self.reading.set(None);
        self.refresh_cached();
        let from = match model.from {
            LoadedFrom::Network => "",
            LoadedFrom::Cache => " from the model cache",
            LoadedFrom::LocalFile => " from your disk",
        };
        let mut message = format!("{} loaded{from} in {:.1} s.", model.name, load_ms / 1000.0);
        if let Some(why) = &model.not_cached {
            if !self.cache_note_shown.get_value() {
                self.cache_note_shown.set_value(true);
                message.push_str(&format!(" It was not stored for next time: {why}."));
            }
        }
        match self.failure.try_update_value(Option::take).flatten() {
            Some(failure) if !self.cancelled() => Err(format!("{failure} {message}")),
            Some(cancelled) => Ok(format!("{cancelled} {message}")),
            None => Ok(message),
        }
    }

    /// What to do after a failed load with `message`; `model_kept`: the worker still holds a model.
    pub fn failed(self, message: &str, model_kept: bool) -> Fallback {
        self.reading.set(None);
        let failed = self.loading.try_update_value(Option::take).flatten();
        if model_kept {
            return Fallback::KeepLoaded;
        }
        match self.current.get_value() {
            Some(previous) if Some(&previous) != failed.as_ref() => {
                self.failure.set_value(Some(message.to_string()));
                self.loading.set_value(Some(previous.clone()));
                Fallback::Reload(previous)
            }
            _ => {
                self.current.set_value(None);
                Fallback::NoModel
            }
        }
    }

    /// Lists the model cache again (after a load, which may have stored a download, or a deletion).
    pub fn refresh_cached(self) {
        wasm_bindgen_futures::spawn_local(async move {
            self.cached.set(Some(model_cache::list().await))
        });
    }
}

/// `?model=` in the page's address.
fn query_model() -> Option<String> {
    let search = web_sys::window().and_then(|w| w.location().search().ok()).unwrap_or_default();
    web_sys::UrlSearchParams::new_with_str(&search)
        .ok()
        .and_then(|p| p.get("model"))
        .filter(|u| !u.is_empty())
}

/// The model the page loads by itself: `?model=` when it names a file on the page's own origin,
/// else the default.
pub fn initial_model_url() -> String {
    query_model()
        .filter(|url| foreign_host(url).is_none())
        .unwrap_or_else(|| DEFAULT_MODEL.to_string())
}

/// `?model=` naming a model anywhere but the page's own origin: it loads only once the person
/// agrees.
pub fn foreign_query_model() -> Option<String> {
    query_model().filter(|url| foreign_host(url).is_some())
}

/// The host of `url` (resolved against the page) when it is not the page's own origin.
pub fn foreign_host(url: &str) -> Option<String> {
    let location = web_sys::window()?.location();
    let page = location.origin().ok()?;
    match web_sys::Url::new_with_base(url, &location.href().ok()?) {
        Ok(resolved) if resolved.origin() == page => None,
        Ok(resolved) => {
            Some(resolved.host()).filter(|h| !h.is_empty()).or(Some(resolved.protocol()))
        }
        // Not a URL at all: not the page's own.
        Err(_) => Some(url.chars().take(40).collect()),
    }
}

/// The directory the page is served from; URLs under it are shared relative to it.
pub fn page_directory() -> String {
    let location = window().location();
    let address = format!(
        "{}{}",
        location.origin().unwrap_or_default(),
        location.pathname().unwrap_or_default()
    );
    address[..address.rfind('/').map_or(address.len(), |i| i + 1)].to_string()
}

pub fn now_ms() -> f64 {
    js_sys::Date::now()
}

async fn fetch_presets() -> Result<Vec<Preset>, String> {
    let window = web_sys::window().ok_or("no window")?;
    let text = |e: wasm_bindgen::JsValue| model_cache::js_error_text(&e);
    let response: web_sys::Response =
        JsFuture::from(window.fetch_with_str(PRESETS_URL)).await.map_err(text)?.unchecked_into();
    if !response.ok() {
        return Err(format!("HTTP {}", response.status()));
    }
    let json = JsFuture::from(response.json().map_err(text)?).await.map_err(text)?;
    let list: PresetList = serde_wasm_bindgen::from_value(json).map_err(|e| e.to_string())?;
    Ok(list.models)
}

#[component]
pub fn ModelPanel(ui: Ui) -> impl IntoView {
    // A .gguf file dropped anywhere on the page loads. Without `preventDefault` on dragover the
    // browser would not allow the drop, and on drop it would open the file instead.
    window_event_listener(ev::dragover, |ev| ev.prevent_default());
    window_event_listener(ev::drop, move |ev| {
        ev.prevent_default();
        if let Some(file) =
            ev.data_transfer().and_then(|d| d.files()).and_then(|files| files.get(0))
        {
            ui.load_model(ModelSource::File(file));
        }
    });
    view! {
        <section class="model-panel" data-testid="model-panel">
            <h2>"Model"</h2>
            <ModelInfo ui=ui/>
            <div class="model-sources">
                <PresetPicker ui=ui/>
                <UrlInput ui=ui/>
                <label class="file-input">"File "
                    <input type="file" accept=".gguf" data-testid="model-file" on:change=move |ev| {
                        let input: web_sys::HtmlInputElement = event_target(&ev);
                        if let Some(file) = input.files().and_then(|files| files.get(0)) {
                            ui.load_model(ModelSource::File(file));
                        }
                        input.set_value(""); // picking the same file again loads it again
                    }/>
                    <span class="hint">" or drop a .gguf file on the page"</span>
                </label>
            </div>
            <LoadProgress ui=ui/>
            <CachedModels ui=ui/>
        </section>
    }
}

/// What is loaded, in text and in `data-*` attributes (the browser tests read them).
#[component]
fn ModelInfo(ui: Ui) -> impl IntoView {
    let attr = move |f: fn(&ModelSummary) -> String| {
        move || ui.model.with(|m| m.as_ref().map(f).unwrap_or_default())
    };
    view! {
        <p class="model-info" data-testid="model-info"
            data-name=attr(|m| m.name.clone()) data-arch=attr(|m| m.config.architecture.clone())
            data-bytes=attr(|m| m.bytes.to_string()) data-sha256=attr(|m| m.sha256.clone())
            data-source=attr(|m| m.from.name().to_string()) data-url=attr(|m| m.url.clone().unwrap_or_default()) data-host=attr(|m| m.url.as_deref().and_then(foreign_host).unwrap_or_default())
            data-fitting-tokens=attr(|m| m.fitting_tokens.to_string())>
            {move || match ui.model.get() {
                None => "No model is loaded.".to_string(),
                Some(m) => {
                    let from = match m.from {
                        LoadedFrom::Network => "downloaded",
                        LoadedFrom::Cache => "from the model cache",
                        LoadedFrom::LocalFile => "local file",
                    };
                    let host = m.url.as_deref().and_then(foreign_host).map(|h| format!(" from {h}")).unwrap_or_default();
                    format!("{} · {} · {} · sha256 {}… · {from}{host}", m.name, m.config.architecture, megabytes(m.bytes as f64), prefix(&m.sha256, 12))
                }
            }}
            {move || ui.model.get().filter(|m| m.fitting_tokens < MAX_TOKENS).map(|m| view! {
                <span class="memory-note">{format!(
                    " · Memory: texts of up to {} tokens fit with this model (saliency; methods with batches fit fewer).",
                    m.fitting_tokens)}</span>
            })}
        </p>
    }
}

#[component]
fn PresetPicker(ui: Ui) -> impl IntoView {
    let loader = ui.loader;
    let chosen = RwSignal::new(0usize);
    let is_cached = move |url: &str| {
        let url = absolute_url(url);
        loader.cached.with(|c| matches!(c, Some(Ok(list)) if list.iter().any(|m| m.url == url)))
    };
    let load = move |preset: Preset| ui.load_model(ModelSource::url(&preset.url));
    let on_load = move |_| {
        let Some(preset) =
            loader.presets.with_untracked(|p| p.get(chosen.get_untracked()).cloned())
        else {
            return;
        };
        match preset.default || is_cached(&preset.url) {
            true => load(preset),
            false => loader.confirming.set(Some(preset)),
        }
    };
    view! {
        <div class="presets">
            <label>"Preset "
                <select data-testid="model-preset" on:change=move |ev| {
                    chosen.set(event_target_value(&ev).parse().unwrap_or(0));
                    loader.confirming.set(None);
                }>
                    {move || loader.presets.get().into_iter().enumerate().map(|(i, p)| {
                        let note = match (p.default, is_cached(&p.url)) {
                            (true, _) => " · served with the page",
                            (false, true) => " · cached",
                            (false, false) => "",
                        };
                        view! {
                            <option value=i.to_string() data-url=p.url.clone() data-bytes=p.bytes.to_string()
                                selected=move || chosen.get() == i>
                                {format!("{} · {} · {}{}{note}", p.name, p.architecture,
                                    if p.verified { "" } else { "about " }, human_bytes(p.bytes as u64))}
                            </option>
                        }
                    }).collect_view()}
                </select>
            </label>
            <button data-testid="preset-load" on:click=on_load>"Load"</button>
            {move || loader.confirming.get().map(|preset| {
                let host = web_sys::Url::new(&preset.url).map(|u| u.host()).unwrap_or_default();
                let unverified = if preset.verified { "" } else { " (size and address unchecked)" };
                view! {
                    <p class="confirm" data-testid="preset-confirm">
                        {format!("Download {} from {host}: about {}{unverified}? It is kept in the model cache afterwards.",
                            preset.name, human_bytes(preset.bytes as u64))}
                        <button data-testid="preset-confirm-yes" on:click=move |_| {
                            loader.confirming.set(None);
                            load(preset.clone());
                        }>"Download"</button>
                        <button class="link" on:click=move |_| loader.confirming.set(None)>"cancel"</button>
                    </p>
                }
            })}
        </div>
    }
}

#[component]
fn UrlInput(ui: Ui) -> impl IntoView {
    let url = RwSignal::new(String::new());
    let load = move || {
        let url = url.get_untracked();
        if !url.trim().is_empty() {
            ui.load_model(ModelSource::url(url.trim()));
        }
    };
    view! {
        <label class="url-input">"URL "
            <input type="url" data-testid="model-url" placeholder="https://…/model.gguf (the server must allow CORS)"
                prop:value=move || url.get() on:input=move |ev| url.set(event_target_value(&ev))
                on:keydown=move |ev: web_sys::KeyboardEvent| if ev.key() == "Enter" { load() }/>
        </label>
        <button data-testid="model-load" on:click=move |_| load()>"Load URL"</button>
    }
}

/// While a model's bytes arrive: the speed and a cancel button (the progress bar is in the
/// status line).
#[component]
fn LoadProgress(ui: Ui) -> impl IntoView {
    let loader = ui.loader;
    view! {
        <Show when=move || loader.reading.get().is_some()>
            <p class="load-progress">
                <span data-testid="download-speed" data-bytes-per-second=move || loader.speed.get().map(|s| format!("{s:.0}")).unwrap_or_default()>
                    {move || loader.speed.get().map(|s| format!("{:.1} MB/s", s / 1e6)).unwrap_or_default()}
                </span>
                " "
                <button data-testid="model-cancel" on:click=move |_| ui.cancel_load()>"Cancel loading"</button>
            </p>
        </Show>
    }
}

#[component]
fn CachedModels(ui: Ui) -> impl IntoView {
    let loader = ui.loader;
    let delete = move |url: String| {
        wasm_bindgen_futures::spawn_local(async move {
            if let Ok(cache) = model_cache::open().await {
                if let Err(why) = model_cache::remove(&cache, &url).await {
                    web_sys::console::warn_1(
                        &format!("could not delete {url} from the model cache: {why}").into(),
                    );
                }
            }
            loader.refresh_cached();
        })
    };
    view! {
        <div class="cached-models" data-testid="cached-models"
            data-state=move || match loader.cached.get() { None => "listing", Some(Ok(_)) => "ready", Some(Err(_)) => "unavailable" }>
            <h3>"Model cache"</h3>
            {move || match loader.cached.get() {
                None => view! { <p class="hint">"Listing…"</p> }.into_any(),
                Some(Err(why)) => view! { <p class="hint">{format!("Models load without caching: {why}.")}</p> }.into_any(),
                Some(Ok(list)) if list.is_empty() => view! {
                    <p class="hint">"Empty. Models loaded from a URL are kept here, so loading them again needs no network."</p>
                }.into_any(),
                Some(Ok(list)) => view! {
                    <ul>
                        {list.into_iter().map(|m| {
                            let (load_url, delete_url) = (m.url.clone(), m.url.clone());
                            view! {
                                <li data-testid="cached-model" data-url=m.url.clone() data-bytes=m.bytes.to_string()>
                                    <span class="name" title=m.url.clone()>{ModelSource::Url(m.url.clone()).name()}</span>
                                    <span class="muted">{format!(" · {}", megabytes(m.bytes))}</span>
                                    <button class="link" data-testid="cached-load"
                                        on:click=move |_| ui.load_model(ModelSource::Url(load_url.clone()))>"load"</button>
                                    <button class="link" data-testid="cached-delete"
                                        on:click=move |_| delete(delete_url.clone())>"delete"</button>
                                </li>
                            }
                        }).collect_view()}
                    </ul>
                }.into_any(),
            }}
        </div>
    }
}

//! "Bring your own model": which model the page loads and the panel to choose another. A model
//! comes from a preset (`models.json`), any URL, or a file picked or dropped on the page. The
//! panel shows what is loaded (name, family, size, sha256, where from), the download's progress
//! with its speed and a cancel button, and the models kept in the model cache.
//!
//! `ModelLoader` remembers which model the worker holds, so that a replaced worker (after Cancel,
//! a crash or a superseded faithfulness check) reloads that one, and which one is loading, so
//! that a failed load can fall back to it.

use crate::state::default_model;
use crate::state::format::megabytes;
use crate::web::address::foreign_host;
use crate::web::model_cache::{self, absolute_url, file_name, CachedModel};
use crate::web::protocol::{LoadedFrom, ModelSummary, ToWorker};
use leptos::prelude::*;
use serde::Deserialize;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

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
    query_model().filter(|url| foreign_host(url).is_none()).unwrap_or_else(default_model::url)
}

/// `?model=` naming a model anywhere but the page's own origin: it loads only once the person
/// agrees.
pub fn foreign_query_model() -> Option<String> {
    query_model().filter(|url| foreign_host(url).is_some())
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

//! The worker's side of loading a model. The bytes come from the model cache, the network or a
//! file the user picked, and are streamed into wasm memory with progress. The load can be
//! cancelled, is checked against the memory limit before and after, stores downloads in the model
//! cache, hashes the file (sha256) as it arrives, and ends with the parsed model.
//!
//! A file too large is refused before any byte is stored: from its Content-Length (a plain count,
//! `model_cache::content_length`) before the cache write starts, the download then aborted; and,
//! when the server names no size, as soon as more bytes arrive than could ever load.

use crate::engine::Model;
use crate::web::model_cache::{self, content_length, file_name, js_error_text};
use crate::web::protocol::{FromWorker, LoadedFrom, ModelSummary};
use crate::web::worker::memory_guard::{self, Room};
use js_sys::{Reflect, Uint8Array};
use sha2::{Digest, Sha256};
use std::cell::RefCell;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{AbortController, Cache, DedicatedWorkerGlobalScope, File, RequestInit, Response};

const CANCELLED: &str = "Loading cancelled.";

/// Report progress about this often (bytes).
const PROGRESS_STEP: f64 = 1e6;

pub enum ModelSource {
    Url(String),
    File(File),
}

/// What `CancelLoad` acts on: the load in progress.
#[derive(Default)]
struct LoadControl {
    cancelled: bool,
    /// The download's abort switch, while one runs.
    download: Option<AbortController>,
}

thread_local! {
    static CONTROL: RefCell<LoadControl> = RefCell::new(LoadControl::default());
}

/// Stops the load in progress: its download is aborted, and it fails with "Loading cancelled."
/// at its next step.
pub fn cancel() {
    CONTROL.with(|c| {
        let mut control = c.borrow_mut();
        control.cancelled = true;
        if let Some(download) = control.download.take() {
            download.abort();
        }
    });
}

fn cancelled() -> bool {
    CONTROL.with(|c| c.borrow().cancelled)
}

pub struct LoadedModel {
    pub model: Model,
    pub summary: ModelSummary,
}

/// An opened source: the response whose body is the file, and where it came from.
struct Opened {
    name: String,
    url: Option<String>,
    from: LoadedFrom,
    response: Response,
    total: Option<u64>,
    /// Where a download is to be stored once its size is known to fit, or why it is not.
    cache: Option<Result<Cache, String>>,
}

impl Opened {
    /// Starts storing the download in the model cache (teed from the response being read).
    /// Returns the write with its cache, or why the download is not being cached.
    fn start_storing(&mut self) -> (Option<(Cache, JsFuture)>, Option<String>) {
        let (Some(cache), Some(url)) = (self.cache.take(), &self.url) else { return (None, None) };
        match cache {
            Err(unavailable) => (None, Some(unavailable)),
            Ok(cache) => match self.response.clone() {
                Ok(copy) => {
                    let storing = model_cache::store(&cache, url, &copy);
                    (Some((cache, storing)), None)
                }
                Err(e) => (
                    None,
                    Some(format!(
                        "its response could not be copied into the cache: {}",
                        js_error_text(&e)
                    )),
                ),
            },
        }
    }
}

/// Loads `source`. `loaded_bytes` is the file size of the model the worker holds: it stays loaded
/// while the new file is read when both fit, and `free_loaded` drops it first when they do not.
/// `post` gets `Reading` and `Progress` messages.
pub async fn load(
    source: ModelSource,
    loaded_bytes: Option<usize>,
    free_loaded: impl FnOnce(),
    post: impl Fn(&FromWorker),
) -> Result<LoadedModel, String> {
    CONTROL.with(|c| *c.borrow_mut() = LoadControl::default());
    let mut opened = open(source).await?;
    let total = opened.total.map(|t| t as f64);
    post(&FromWorker::Reading { name: opened.name.clone(), from: opened.from, total });
    match memory_guard::room_for_file(opened.total, loaded_bytes) {
        Ok(Room::AfterFreeing) => free_loaded(),
        Ok(Room::BesideLoaded) => {}
        Err(refused) => {
            // Nothing was stored: abort the transfer too.
            cancel();
            return Err(refused);
        }
    }
    let (storing, not_cached) = opened.start_storing();
    let mut loaded = read_body(&opened, &post)
        .await
        .and_then(|file| parse(file, &opened.name, opened.url.clone(), opened.from, not_cached));
    if let (Some((cache, storing)), Some(url)) = (storing, &opened.url) {
        // The cache write ends shortly after the download (it is teed from it). Waiting for it
        // here keeps it from being lost when the page replaces this worker soon after the load.
        match (storing.await, &mut loaded) {
            (Ok(_), Ok(_)) | (Err(_), Err(_)) => {}
            // Only files that load stay cached; a broken one would be read again next time.
            (Ok(_), Err(_)) => drop(model_cache::remove(&cache, url).await),
            (Err(e), Ok(model)) => {
                model.summary.not_cached =
                    Some(format!("storing it in the model cache failed: {}", js_error_text(&e)))
            }
        }
    }
    loaded
}

async fn open(source: ModelSource) -> Result<Opened, String> {
    match source {
        ModelSource::File(file) => {
            let response =
                Response::new_with_opt_blob(Some(&file)).map_err(|e| js_error_text(&e))?;
            // A File's size is a count of bytes the browser knows.
            let total = Some(file.size() as u64);
            let from = LoadedFrom::LocalFile;
            Ok(Opened { name: file.name(), url: None, from, response, total, cache: None })
        }
        ModelSource::Url(url) => {
            let url = model_cache::absolute_url(&url);
            let name = file_name(&url);
            let cache = model_cache::open().await;
            if let Ok(cache) = &cache {
                if let Some(response) = model_cache::lookup(cache, &url).await {
                    let total = content_length(&response);
                    let from = LoadedFrom::Cache;
                    return Ok(Opened { name, url: Some(url), from, response, total, cache: None });
                }
            }
            let response = download(&url).await?;
            let total = content_length(&response);
            let from = LoadedFrom::Network;
            Ok(Opened { name, url: Some(url), from, response, total, cache: Some(cache) })
        }
    }
}

/// The response for `url`, with a message for each way it can fail.
async fn download(url: &str) -> Result<Response, String> {
    let controller = AbortController::new().map_err(|e| js_error_text(&e))?;
    let init = RequestInit::new();
    init.set_signal(Some(&controller.signal()));
    CONTROL.with(|c| c.borrow_mut().download = Some(controller));
    let scope: DedicatedWorkerGlobalScope = js_sys::global().unchecked_into();
    let response = match JsFuture::from(scope.fetch_with_str_and_init(url, &init)).await {
        Ok(response) => response.unchecked_into::<Response>(),
        Err(_) if cancelled() => return Err(CANCELLED.into()),
        // The browser gives scripts no detail on why a fetch failed (it would leak other sites'
        // answers), so the message lists the likely causes.
        Err(e) => {
            return Err(format!(
                "Could not download the model from {url} ({}). The server may be unreachable, or it does not let \
                 this page read the file: a model on another site must be served with CORS headers \
                 (Access-Control-Allow-Origin).",
                js_error_text(&e)
            ))
        }
    };
    if !response.ok() {
        return Err(format!(
            "Could not download the model from {url}: the server answered HTTP {} {}.",
            response.status(),
            response.status_text()
        ));
    }
    Ok(response)
}

/// A model file in wasm memory, with the sha256 of its bytes.
struct FileBytes {
    bytes: Vec<u8>,
    sha256: String,
}

/// Streams the body into wasm memory (its only copy there), posting progress about every MB.
/// Each chunk is hashed as it arrives. Hashing the whole file in one call would take seconds
/// longer in a fresh worker: V8 first runs wasm in baseline code and switches a function to
/// optimised code only between calls, so one long call never gets the fast code.
async fn read_body(opened: &Opened, post: &impl Fn(&FromWorker)) -> Result<FileBytes, String> {
    let total = opened.total;
    let broke_off = |bytes: usize, e: &wasm_bindgen::JsValue| match cancelled() {
        true => CANCELLED.to_string(),
        false => format!(
            "Reading {} stopped after {:.1} MB: {}",
            opened.name,
            bytes as f64 / 1e6,
            js_error_text(e)
        ),
    };
    let body = opened.response.body().ok_or_else(|| format!("{} has no content", opened.name))?;
    let reader: web_sys::ReadableStreamDefaultReader = body.get_reader().unchecked_into();
    // The room check has passed: a known size fits, and an unknown one stops at the most any
    // file could take.
    let limit = total.unwrap_or_else(memory_guard::largest_file);
    let mut bytes = Vec::with_capacity(total.unwrap_or(0) as usize);
    let mut hasher = Sha256::new();
    let mut last_report = 0.0;
    loop {
        let chunk = JsFuture::from(reader.read()).await.map_err(|e| broke_off(bytes.len(), &e))?;
        if cancelled() {
            // Awaited so its rejection is handled: when the abort has already errored the stream,
            // `cancel()` rejects with the AbortError (else an uncaught error in the worker).
            let _ = JsFuture::from(reader.cancel()).await;
            return Err(CANCELLED.into());
        }
        if Reflect::get(&chunk, &"done".into())
            .map_err(|e| broke_off(bytes.len(), &e))?
            .as_bool()
            .unwrap_or(true)
        {
            break;
        }
        let data: Uint8Array = Reflect::get(&chunk, &"value".into())
            .map_err(|e| broke_off(bytes.len(), &e))?
            .unchecked_into();
        let start = bytes.len();
        if (start + data.length() as usize) as u64 > limit {
            let _ = JsFuture::from(reader.cancel()).await;
            cancel();
            return Err(match total {
                Some(total) => format!(
                    "{} sent more than the {} its server announced; the download was stopped.",
                    opened.name,
                    crate::state::format::human_bytes(total)
                ),
                None => format!(
                    "{} is larger than the {} this page's worker can load (its server did not say its size); the download was stopped.",
                    opened.name,
                    crate::state::format::human_bytes(limit)
                ),
            });
        }
        bytes.resize(start + data.length() as usize, 0);
        data.copy_to(&mut bytes[start..]);
        hasher.update(&bytes[start..]);
        let loaded = bytes.len() as f64;
        let total = total.map(|t| t as f64);
        if loaded - last_report > PROGRESS_STEP || Some(loaded) == total {
            last_report = loaded;
            post(&FromWorker::Progress { loaded, total });
        }
    }
    post(&FromWorker::Progress { loaded: bytes.len() as f64, total: total.map(|t| t as f64) });
    let sha256 = hasher.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Ok(FileBytes { bytes, sha256 })
}

/// The model in `bytes`, once it is known to leave room for a useful text.
fn parse(
    FileBytes { bytes, sha256 }: FileBytes,
    name: &str,
    url: Option<String>,
    from: LoadedFrom,
    not_cached: Option<String>,
) -> Result<LoadedModel, String> {
    if cancelled() {
        return Err(CANCELLED.into());
    }
    let size = bytes.len();
    let model = Model::load(bytes).map_err(|e| e.to_string())?;
    let fitting_tokens = memory_guard::fitting_tokens(&model)?;
    let summary = ModelSummary {
        name: name.to_string(),
        bytes: size,
        config: model.config().clone(),
        sha256,
        url,
        from,
        not_cached,
        fitting_tokens,
    };
    Ok(LoadedModel { model, summary })
}

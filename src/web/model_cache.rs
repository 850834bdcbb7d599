//! Downloaded models kept with the browser's Cache API, in the cache `salient-models-v1`, keyed by
//! their absolute URL: loading the same URL again reads the disk instead of the network. The
//! worker reads and writes entries; the page lists and deletes them.
//!
//! The Cache API exists in windows and workers of secure contexts (https, http://127.0.0.1 and
//! localhost). Elsewhere (plain http to another host, a sandboxed page with an opaque origin)
//! `open` says why it is unavailable, and models load without caching.

use js_sys::Reflect;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{Cache, CacheStorage, Request, Response};

const CACHE_NAME: &str = "salient-models-v1";

/// One stored model.
#[derive(Clone, Debug, PartialEq)]
pub struct CachedModel {
    pub url: String,
    pub bytes: f64,
}

/// The model cache, or why this page cannot use one.
pub async fn open() -> Result<Cache, String> {
    let unavailable = |why: String| format!("the browser's Cache API is unavailable here ({why})");
    // Read as a property: `caches` is missing outside secure contexts, and reading it throws in an
    // opaque origin.
    let storage = Reflect::get(&js_sys::global(), &"caches".into())
        .map_err(|e| unavailable(js_error_text(&e)))?;
    let storage: CacheStorage =
        storage.dyn_into().map_err(|_| unavailable("not a secure context".into()))?;
    let cache = JsFuture::from(storage.open(CACHE_NAME))
        .await
        .map_err(|e| unavailable(js_error_text(&e)))?;
    Ok(cache.unchecked_into())
}

/// The stored response for `url`, if any.
pub async fn lookup(cache: &Cache, url: &str) -> Option<Response> {
    let found = JsFuture::from(cache.match_with_str(url)).await.ok()?;
    found.dyn_into::<Response>().ok()
}

/// Starts storing `response` (a clone of the one being read) under `url`. The returned future
/// settles once the whole body is stored, or fails if the download fails or is cancelled, in
/// which case nothing is stored.
pub fn store(cache: &Cache, url: &str, response: &Response) -> JsFuture {
    JsFuture::from(cache.put_with_str(url, response))
}

/// Removes `url`; a missing entry is not an error.
pub async fn remove(cache: &Cache, url: &str) -> Result<(), String> {
    JsFuture::from(cache.delete_with_str(url)).await.map(|_| ()).map_err(|e| js_error_text(&e))
}

/// Every stored model with its size, in the order they were stored.
pub async fn list() -> Result<Vec<CachedModel>, String> {
    let cache = open().await?;
    let requests: js_sys::Array =
        JsFuture::from(cache.keys()).await.map_err(|e| js_error_text(&e))?.unchecked_into();
    let mut models = Vec::new();
    for request in requests.iter() {
        let url = request.unchecked_into::<Request>().url();
        if let Some(response) = lookup(&cache, &url).await {
            models.push(CachedModel { bytes: body_bytes(&response).await, url });
        }
    }
    Ok(models)
}

/// The stored body's size: its Content-Length, or else the size of the body as a blob (which the
/// browser knows without reading it).
async fn body_bytes(response: &Response) -> f64 {
    if let Some(length) = content_length(response) {
        return length as f64;
    }
    match response.blob() {
        Ok(blob) => JsFuture::from(blob)
            .await
            .map(|b| b.unchecked_into::<web_sys::Blob>().size())
            .unwrap_or(0.0),
        Err(_) => 0.0,
    }
}

/// The body's size from its Content-Length header, when that is a plain count of bytes
/// (`state::download::content_length`).
pub fn content_length(response: &Response) -> Option<u64> {
    let header = response.headers().get("content-length").ok().flatten()?;
    crate::state::download::content_length(&header)
}

/// The text of a JavaScript error (its `message`), or its debug form.
pub fn js_error_text(e: &wasm_bindgen::JsValue) -> String {
    e.dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.message()))
        .unwrap_or_else(|| format!("{e:?}"))
}

/// `url` resolved against the address of the page (or of the worker, which lives next to it):
/// cache keys and the models' names are read from absolute URLs.
pub fn absolute_url(url: &str) -> String {
    let base = Reflect::get(&js_sys::global(), &"location".into())
        .and_then(|location| Reflect::get(&location, &"href".into()))
        .ok()
        .and_then(|href| href.as_string());
    base.and_then(|base| web_sys::Url::new_with_base(url, &base).ok())
        .map_or_else(|| url.to_string(), |u| u.href())
}

/// The last path segment of `url`: the name a model is shown under.
pub fn file_name(url: &str) -> String {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    path.rsplit('/').find(|s| !s.is_empty()).unwrap_or(path).to_string()
}

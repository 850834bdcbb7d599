//! The model panel, folded to a one-line summary: what is loaded (name, family, size, sha256, where from), the presets, a URL
//! or a file to load instead, the download's progress with its speed and Cancel, and the models
//! kept in the model cache.

use crate::state::format::{human_bytes, megabytes};
use crate::state::settings::MAX_TOKENS;
use crate::state::view::prefix;
use crate::web::address::foreign_host;
use crate::web::model_cache::{self, absolute_url};
use crate::web::page::models::{ModelSource, Preset};
use crate::web::page::ui::{Phase, Ui};
use crate::web::protocol::{LoadedFrom, ModelSummary};
use leptos::ev;
use leptos::prelude::*;

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
    // Folded to one line; it opens by itself when there is no model to use (a load failed).
    let open = RwSignal::new(false);
    Effect::new(move |_| {
        if ui.model.with(Option::is_none) && ui.phase.get() == Phase::Error {
            open.set(true);
        }
    });
    let summary = move || match ui.model.get() {
        Some(m) => format!("Model: {} · {} · ", m.name, megabytes(m.bytes as f64)),
        None => "Model: none loaded · ".to_string(),
    };
    view! {
        <details class="model-panel" data-testid="model-panel" prop:open=move || open.get()
            on:toggle=move |ev| open.set(event_target::<web_sys::Element>(&ev).has_attribute("open"))>
            <summary data-testid="model-summary">{summary}<span class="change">"change"</span></summary>
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
        </details>
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

//! Exports of the shown result, each a download (a Blob behind an `<a download>`): JSON (every
//! number, loadable again), CSV, HTML, SVG (their text is `state::export`'s), and PNG (the SVG
//! drawn on a canvas).
//!
//! A JSON export loads back through the file input or by dropping it on the page; it is checked
//! exactly as shown (`SavedResult::output`) and shown like a link's snapshot, with its settings.

use crate::state::colour::Scale;
use crate::state::export::{csv, html, svg, Shown};
use crate::state::link::MAX_JSON_BYTES;
use crate::state::shared::{SavedModel, SavedResult};
use crate::web::page::sharing::{show_saved, with_faithfulness, Sharing};
use crate::web::page::ui::Ui;
use leptos::prelude::*;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

#[derive(Clone, Copy, PartialEq)]
pub enum Format {
    Json,
    Csv,
    Html,
    Svg,
    Png,
}

impl Format {
    pub const ALL: [Format; 5] =
        [Format::Json, Format::Csv, Format::Html, Format::Svg, Format::Png];

    pub fn extension(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Csv => "csv",
            Format::Html => "html",
            Format::Svg => "svg",
            Format::Png => "png",
        }
    }

    fn mime(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Csv => "text/csv;charset=utf-8",
            Format::Html => "text/html;charset=utf-8",
            Format::Svg => "image/svg+xml",
            Format::Png => "image/png",
        }
    }
}

fn saved_result(ui: Ui) -> Option<SavedResult> {
    let output = with_faithfulness(ui, &*ui.result.get_untracked()?);
    let model = ui.model.with_untracked(|m| {
        m.as_ref().map(|m| SavedModel {
            name: m.name.clone(),
            sha256: m.sha256.clone(),
            bytes: m.bytes as u64,
            url: m.url.clone(),
        })
    });
    Some(SavedResult {
        salient: env!("CARGO_PKG_VERSION").into(),
        model: model.unwrap_or(SavedModel {
            name: String::new(),
            sha256: String::new(),
            bytes: 0,
            url: None,
        }),
        settings: ui.settings.get_untracked(),
        result: output.attribution,
        baseline_value: output.baseline_value,
    })
}

/// Downloads `text` as the file `name`.
pub fn download_text(text: &str, mime: &str, name: &str) -> Result<(), JsValue> {
    download(&blob(text, mime)?, name)
}

fn blob(text: &str, mime: &str) -> Result<web_sys::Blob, JsValue> {
    let options = web_sys::BlobPropertyBag::new();
    options.set_type(mime);
    web_sys::Blob::new_with_str_sequence_and_options(&js_sys::Array::of1(&text.into()), &options)
}

fn download(blob: &web_sys::Blob, name: &str) -> Result<(), JsValue> {
    let url = web_sys::Url::create_object_url_with_blob(blob)?;
    let link: web_sys::HtmlAnchorElement = document().create_element("a")?.unchecked_into();
    link.set_href(&url);
    link.set_download(name);
    link.click();
    // The download starts after this task: revoke the URL later.
    gloo::timers::callback::Timeout::new(60_000, move || {
        let _ = web_sys::Url::revoke_object_url(&url);
    })
    .forget();
    Ok(())
}

/// The PNG of `svg` (drawn at twice its size, for sharp text).
async fn png(svg: &str, width: f32, height: f32) -> Result<web_sys::Blob, JsValue> {
    const SCALE: f64 = 2.0;
    let url = web_sys::Url::create_object_url_with_blob(&blob(svg, Format::Svg.mime())?)?;
    let image = web_sys::HtmlImageElement::new()?;
    image.set_src(&url);
    let decoded = JsFuture::from(image.decode()).await;
    web_sys::Url::revoke_object_url(&url)?;
    decoded?;
    let canvas: web_sys::HtmlCanvasElement = document().create_element("canvas")?.unchecked_into();
    canvas.set_width((width as f64 * SCALE) as u32);
    canvas.set_height((height as f64 * SCALE) as u32);
    let context: web_sys::CanvasRenderingContext2d =
        canvas.get_context("2d")?.ok_or("no 2d canvas")?.unchecked_into();
    context.scale(SCALE, SCALE)?;
    context.draw_image_with_html_image_element(&image, 0.0, 0.0)?;
    let made = js_sys::Promise::new(&mut |resolve, reject| {
        if let Err(e) = canvas.to_blob(&resolve) {
            let _ = reject.call1(&JsValue::NULL, &e);
        }
    });
    JsFuture::from(made).await?.dyn_into::<web_sys::Blob>()
}

pub async fn export(ui: Ui, format: Format) -> Result<(), JsValue> {
    let Some(output) = ui.result.get_untracked() else { return Ok(()) };
    let attribution = &output.attribution;
    let scale = ui
        .settings
        .with_untracked(|s| Scale::new(&attribution.scores, attribution.signed, &s.view));
    let model = ui.model.with_untracked(|m| m.as_ref().map(|m| m.name.clone()));
    let shown = Shown::new(attribution, scale, model.as_deref());
    let name = format!("salient-{}.{}", attribution.method, format.extension());
    let text = match format {
        Format::Json => {
            serde_json::to_string_pretty(&saved_result(ui)).map_err(|e| e.to_string())?
        }
        Format::Csv => csv(&shown),
        Format::Html => html(&shown),
        Format::Svg | Format::Png => svg(&shown).0,
    };
    let file = match format {
        Format::Png => {
            let (_, width, height) = svg(&shown);
            png(&text, width, height).await?
        }
        _ => blob(&text, format.mime())?,
    };
    download(&file, &name)
}

/// Loads an exported JSON file and shows its result with its settings.
pub fn import(ui: Ui, sharing: Sharing, file: web_sys::File) {
    let name = file.name();
    wasm_bindgen_futures::spawn_local(async move {
        let loaded = async {
            if file.size() > MAX_JSON_BYTES as f64 {
                return Err(format!("it is larger than {} MiB", MAX_JSON_BYTES >> 20));
            }
            let text = JsFuture::from(file.text())
                .await
                .map_err(|_| "it could not be read".to_string())?;
            let saved: SavedResult = serde_json::from_str(&text.as_string().unwrap_or_default())
                .map_err(|e| format!("it is not a result exported by Salient ({e})"))?;
            let output = saved
                .output()
                .map_err(|e| e.to_string().replace("the result it holds", "its result"))?;
            Ok((saved.settings, output))
        };
        match loaded.await {
            Ok((settings, output)) => show_saved(ui, sharing, name, settings, output),
            Err(why) => {
                sharing.problem.set(Some(format!("The file {name} cannot be loaded: {why}.")))
            }
        }
    });
}

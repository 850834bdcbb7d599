//! Exports of the shown result, each a download (a Blob behind an `<a download>`): JSON (every
//! number, loadable again), CSV (one row per token), a standalone HTML snippet (inline styles, no
//! script), SVG, and PNG (the SVG drawn on a canvas). Colours come from `heat::Scale` with the
//! page's view settings, as on the page. All token text is escaped: it may come from a link.
//!
//! A JSON export loads back through the file input or by dropping it on the page; it is shown
//! like a link's snapshot, with its settings.

use super::app::Ui;
use super::heatmap::{method_label, quantity};
use super::share_link::{show_saved, with_faithfulness, Sharing};
use crate::engine::token_text::visible;
use crate::engine::Attribution;
use crate::state::colour::{short, Scale};
use crate::state::link::MAX_JSON_BYTES;
use crate::state::shared::{SavedModel, SavedResult};
use leptos::prelude::*;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

/// `text` safe inside HTML or XML text and attribute values. Characters XML forbids (C0 controls
/// other than tab, newline and return; U+FFFE, U+FFFF) become U+FFFD, so the SVG always parses.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

#[derive(Clone, Copy, PartialEq)]
enum Format {
    Json,
    Csv,
    Html,
    Svg,
    Png,
}

impl Format {
    const ALL: [Format; 5] = [Format::Json, Format::Csv, Format::Html, Format::Svg, Format::Png];

    fn extension(self) -> &'static str {
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

/// What an export shows: the next-token map of the shown result, coloured as on the page.
struct Shown {
    attribution: Attribution,
    scale: Scale,
    /// "Gradient saliency (L2 norm) of p(" Paris")".
    title: String,
    /// The model and the Salient version.
    credit: String,
}

impl Shown {
    fn of(ui: Ui) -> Option<Self> {
        let attribution = ui.result.get_untracked()?.attribution;
        let scale = ui
            .settings
            .with_untracked(|s| Scale::new(&attribution.scores, attribution.signed, &s.view));
        let foil = attribution.foil.as_ref().map(|f| f.text.as_str());
        let title = format!(
            "{} of {}",
            method_label(&attribution.method),
            quantity(attribution.target_kind, &attribution.target.text, foil)
        );
        let model = ui
            .model
            .with_untracked(|m| m.as_ref().map(|m| format!("{} · ", m.name)))
            .unwrap_or_default();
        let credit = format!("{model}Salient {}", env!("CARGO_PKG_VERSION"));
        Some(Self { attribution, scale, title, credit })
    }

    fn tooltip(&self, i: usize) -> String {
        let (token, score) = (&self.attribution.tokens[i], self.attribution.scores[i]);
        format!("token {i} {} · id {} · score {score:.4e}", visible(&token.text), token.id)
    }
}

fn saved_result(ui: Ui) -> Option<SavedResult> {
    let output = with_faithfulness(ui, &ui.result.get_untracked()?);
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

/// `index,token_id,token_text,score,normalised`: `normalised` is the score on the colour scale
/// (as coloured on the page). Text is always quoted.
fn csv(shown: &Shown) -> String {
    let a = &shown.attribution;
    let mut out = String::from("index,token_id,token_text,score,normalised\n");
    for (i, (token, score)) in a.tokens.iter().zip(&a.scores).enumerate() {
        let text = token.text.replace('"', "\"\"");
        out.push_str(&format!(
            "{i},{},\"{text}\",{score},{}\n",
            token.id,
            shown.scale.norm(*score)
        ));
    }
    out
}

/// A legend as inline-styled HTML: the colour bar, its ends and middle, and what is explained.
fn html_legend(shown: &Shown) -> String {
    let ticks =
        shown.scale.ticks().map(|t| format!("<span>{}</span>", escape(&short(t as f64)))).join("");
    format!(
        "<div style=\"display:flex;gap:12px;align-items:flex-start;margin-top:8px;font:13px system-ui,sans-serif;color:#5f6368\">\
         <span style=\"display:flex;flex-direction:column;width:176px\">\
         <span style=\"display:block;height:12px;border:1px solid #d9dce1;border-radius:3px;background:{}\"></span>\
         <span style=\"display:flex;justify-content:space-between;font-size:11px\">{ticks}</span></span>\
         <span><strong style=\"color:#1d1d1f\">{}</strong><br>{}</span></div>",
        shown.scale.gradient(),
        escape(&shown.title),
        escape(&shown.credit)
    )
}

/// A standalone snippet: tokens as spans with their colour and a tooltip, then the legend.
fn html(shown: &Shown) -> String {
    let a = &shown.attribution;
    let spans: String = a
        .tokens
        .iter()
        .enumerate()
        .map(|(i, token)| {
            format!(
                "<span style=\"background:{};border-radius:3px\" title=\"{}\">{}</span>",
                shown.scale.colour(a.scores[i]),
                escape(&shown.tooltip(i)),
                escape(&token.text)
            )
        })
        .collect();
    format!(
        "<figure style=\"margin:0;max-width:760px\">\n<div style=\"font:16px/2 ui-monospace,Menlo,monospace;white-space:pre-wrap;\
         word-break:break-word;padding:8px 12px;border:1px solid #d9dce1;border-radius:6px;background:#fff;color:#1d1d1f\">{spans}</div>\n{}\n</figure>\n",
        html_legend(shown)
    )
}

const SVG_WIDTH: f32 = 760.0;
const SVG_PAD: f32 = 12.0;
const FONT_PX: f32 = 16.0;
/// Monospace advance (0.6 em); East Asian wide characters and emoji take two.
const CELL_PX: f32 = 9.6;
const LINE_PX: f32 = 28.0;

fn cells(text: &str) -> f32 {
    let wide = |c: char| {
        matches!(c as u32, 0x1100..=0x115F | 0x2E80..=0xA4CF | 0xAC00..=0xD7A3 | 0xF900..=0xFAFF | 0xFE30..=0xFE4F
        | 0xFF00..=0xFF60 | 0xFFE0..=0xFFE6 | 0x1F300..=0x1FAFF | 0x20000..=0x3FFFD)
    };
    text.chars().map(|c| if wide(c) { 2.0 } else { 1.0 }).sum()
}

/// The map as SVG: one `<rect>` and `<text>` per piece of token (a newline ends a line, shown as
/// ↵ as on the page; spaces as no-break spaces, which SVG keeps), wrapped at the width; then the
/// legend. Returns it with its size.
fn svg(shown: &Shown) -> (String, f32, f32) {
    let a = &shown.attribution;
    let (mut x, mut y) = (SVG_PAD, SVG_PAD);
    let mut body = String::new();
    for (i, token) in a.tokens.iter().enumerate() {
        let (colour, title) = (shown.scale.colour(a.scores[i]), escape(&shown.tooltip(i)));
        for (k, piece) in token.text.replace('\n', "↵\n").split('\n').enumerate() {
            if k > 0 {
                (x, y) = (SVG_PAD, y + LINE_PX);
            }
            let width = cells(piece) * CELL_PX;
            if piece.is_empty() {
                continue;
            }
            if x + width > SVG_WIDTH - SVG_PAD && x > SVG_PAD {
                (x, y) = (SVG_PAD, y + LINE_PX);
            }
            body.push_str(&format!(
                "<g><title>{title}</title><rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{width:.1}\" height=\"{:.1}\" rx=\"2\" fill=\"{colour}\"/>\
                 <text x=\"{x:.1}\" y=\"{:.1}\">{}</text></g>\n",
                LINE_PX - 4.0,
                y + FONT_PX + 2.0,
                // SVG collapses leading and repeated spaces (`xml:space` is not honoured everywhere).
                escape(piece).replace(' ', "\u{a0}")
            ));
            x += width;
        }
    }
    let legend_y = y + LINE_PX + 10.0;
    let ticks = shown.scale.ticks();
    let stops: String = ticks
        .iter()
        .enumerate()
        .map(|(k, t)| {
            format!(
                "<stop offset=\"{}\" stop-color=\"{}\"/>",
                k as f32 / 2.0,
                shown.scale.colour(*t)
            )
        })
        .collect();
    let labels: String = ticks
        .iter()
        .zip([("start", 0.0), ("middle", 88.0), ("end", 176.0)])
        .map(|(t, (anchor, dx))| {
            format!(
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"{anchor}\">{}</text>",
                SVG_PAD + dx,
                legend_y + 26.0,
                escape(&short(*t as f64))
            )
        })
        .collect();
    let height = legend_y + 70.0;
    let svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{SVG_WIDTH}\" height=\"{height:.0}\" viewBox=\"0 0 {SVG_WIDTH} {height:.0}\">\n\
         <defs><linearGradient id=\"salient-scale\">{stops}</linearGradient></defs>\n\
         <rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>\n\
         <g font-family=\"ui-monospace, Menlo, Consolas, monospace\" font-size=\"{FONT_PX}\" fill=\"#1d1d1f\">\n{body}</g>\n\
         <g font-family=\"system-ui, sans-serif\" font-size=\"11\" fill=\"#5f6368\">\
         <rect x=\"{SVG_PAD}\" y=\"{legend_y:.1}\" width=\"176\" height=\"12\" rx=\"3\" fill=\"url(#salient-scale)\" stroke=\"#d9dce1\"/>{labels}\
         <text x=\"{SVG_PAD}\" y=\"{:.1}\" font-size=\"13\" fill=\"#1d1d1f\" font-weight=\"600\">{}</text>\
         <text x=\"{SVG_PAD}\" y=\"{:.1}\" font-size=\"12\">{}</text></g>\n</svg>\n",
        legend_y + 46.0,
        escape(&shown.title),
        legend_y + 62.0,
        escape(&shown.credit)
    );
    (svg, SVG_WIDTH, height)
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

async fn export(ui: Ui, format: Format) -> Result<(), JsValue> {
    let Some(shown) = Shown::of(ui) else { return Ok(()) };
    let name = format!("salient-{}.{}", shown.attribution.method, format.extension());
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
fn import(ui: Ui, sharing: Sharing, file: web_sys::File) {
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
            saved
                .check()
                .map_err(|e| e.to_string().replace("the result it holds", "its result"))?;
            Ok(saved)
        };
        match loaded.await {
            Ok(saved) => {
                let output = super::protocol::RunOutput {
                    attribution: saved.result,
                    baseline_value: saved.baseline_value,
                    compared: Vec::new(),
                    agreements: Vec::new(),
                };
                show_saved(ui, sharing, name, saved.settings, output);
            }
            Err(why) => {
                sharing.problem.set(Some(format!("The file {name} cannot be loaded: {why}.")))
            }
        }
    });
}

/// A `.json` file dropped anywhere on the page is an export to load. The model panel loads any
/// other dropped file as a model: this listener runs first (on the document, before the
/// window's) and keeps JSON files from reaching it.
fn accept_dropped_json(ui: Ui, sharing: Sharing) {
    let on_drop = Closure::<dyn Fn(web_sys::DragEvent)>::new(move |ev: web_sys::DragEvent| {
        let file = ev.data_transfer().and_then(|d| d.files()).and_then(|files| files.get(0));
        if let Some(file) = file.filter(|f| {
            f.name().to_lowercase().ends_with(".json") || f.type_() == "application/json"
        }) {
            ev.prevent_default();
            ev.stop_propagation();
            import(ui, sharing, file);
        }
    });
    let _ = document().add_event_listener_with_callback("drop", on_drop.as_ref().unchecked_ref());
    on_drop.forget(); // for the page's lifetime
}

#[component]
pub fn ExportPanel(ui: Ui, sharing: Sharing) -> impl IntoView {
    accept_dropped_json(ui, sharing);
    let nothing = move || ui.result.with(Option::is_none);
    let button = move |format: Format| {
        let on_click = move |_| {
            wasm_bindgen_futures::spawn_local(async move {
                if let Err(e) = export(ui, format).await {
                    sharing.problem.set(Some(format!(
                        "The {} export failed: {e:?}.",
                        format.extension().to_uppercase()
                    )));
                }
            })
        };
        view! {
            <button data-testid=format!("export-{}", format.extension()) disabled=nothing on:click=on_click>
                {format.extension().to_uppercase()}
            </button>
        }
    };
    view! {
        <div class="control-row export">
            <span class="muted">"Download the result as"</span>
            {Format::ALL.map(button).collect_view()}
            <label class="file-input" title="A JSON file exported here; or drop it on the page">"Load a result "
                <input type="file" accept=".json,application/json" data-testid="import-json" on:change=move |ev| {
                    let input: web_sys::HtmlInputElement = event_target(&ev);
                    if let Some(file) = input.files().and_then(|files| files.get(0)) {
                        import(ui, sharing, file);
                    }
                    input.set_value("");
                }/>
            </label>
        </div>
    }
}

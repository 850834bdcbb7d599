//! A continuation explained token by token: a token × earlier-token heat map. Row j explains
//! continuation token j from every token before it; clicking a row shows it on the text.
//!
//! The cells are drawn on one canvas: a link may hold 511 rows of up to 511 scores, and as table
//! cells those took the page's thread for seconds. Each row is still an element (its label, what
//! it holds in `data-scores`, click and keyboard), and the canvas says which cell is under the
//! pointer.

use crate::engine::model::token_text::visible;
use crate::state::colour::Scale;
use crate::state::format::short;
use crate::state::settings::ViewSettings;
use crate::state::view::{matrix, Matrix};
use crate::web::page::ui::Ui;
use leptos::html::Canvas;
use leptos::prelude::*;
use wasm_bindgen::JsCast;

/// Columns up to which each one gets a label above the cells.
const LABELLED_COLUMNS: usize = 96;

/// The side of one cell, in CSS pixels: smaller for larger matrices, so they stay in view.
fn cell_px(rows: usize, columns: usize) -> f64 {
    match rows.max(columns) {
        0..=96 => 18.0,
        97..=200 => 10.0,
        _ => 6.0,
    }
}

/// Draws every row's cells, each on its own row's scale.
fn draw(canvas: &web_sys::HtmlCanvasElement, m: &Matrix, signed: bool, view: &ViewSettings) {
    let cell = cell_px(m.rows.len(), m.columns.len());
    let ratio = web_sys::window().map_or(1.0, |w| w.device_pixel_ratio()).max(1.0);
    let (width, height) = (cell * m.columns.len() as f64, cell * m.rows.len() as f64);
    canvas.set_width((width * ratio) as u32);
    canvas.set_height((height * ratio) as u32);
    let style = format!("width:{width}px;height:{height}px");
    let _ = canvas.set_attribute("style", &style);
    let Some(context) = canvas
        .get_context("2d")
        .ok()
        .flatten()
        .and_then(|c| c.dyn_into::<web_sys::CanvasRenderingContext2d>().ok())
    else {
        return;
    };
    let _ = context.set_transform(ratio, 0.0, 0.0, ratio, 0.0, 0.0);
    context.clear_rect(0.0, 0.0, width, height);
    let gap = if cell >= 10.0 { 1.0 } else { 0.0 };
    for (j, row) in m.rows.iter().enumerate() {
        let scale = Scale::new(&row.scores, signed, view);
        for (i, score) in row.scores.iter().enumerate() {
            context.set_fill_style_str(&scale.colour(*score));
            context.fill_rect(
                i as f64 * cell + gap,
                j as f64 * cell + gap,
                cell - 2.0 * gap,
                cell - 2.0 * gap,
            );
        }
    }
}

#[component]
pub fn ContinuationMatrix(ui: Ui) -> impl IntoView {
    let view_settings = ui.setting(|s| s.view.clone());
    let canvas = NodeRef::<Canvas>::new();
    let hover = RwSignal::new(None::<(usize, usize)>);
    Effect::new(move |_| {
        let (Some(canvas), Some(output)) = (canvas.get(), ui.result.get()) else { return };
        if let Some(m) = matrix(&output) {
            draw(&canvas, &m, output.attribution.signed, &view_settings.get());
        }
    });
    move || {
        let output = ui.result.get()?;
        let m = matrix(&output)?;
        let selected = ui.row.get();
        let cell = cell_px(m.rows.len(), m.columns.len());
        let output_start = m.output_start;
        let header = (m.columns.len() <= LABELLED_COLUMNS).then(|| {
            m.columns
                .iter()
                .enumerate()
                .map(|(i, t)| view! {
                    <span class="column" class:output={i >= output_start} style=format!("width:{cell}px")
                        title=format!("token {i}, id {}", t.id)><span>{visible(&t.text)}</span></span>
                })
                .collect_view()
        });
        let rows = m
            .rows
            .iter()
            .enumerate()
            .map(|(j, row)| {
                let scores = row.scores.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(" ");
                let show = move || ui.row.set(Some(j));
                view! {
                    <li data-testid="matrix-row" data-row=j.to_string() data-token-id=row.target.id.to_string()
                        data-scores=scores class:selected=selected == Some(j) tabindex="0"
                        style=format!("height:{cell}px;font-size:{:.0}px", (cell * 0.72).clamp(5.0, 13.0))
                        title=format!("{}: id {}, p = {:.4} after the tokens before it", visible(&row.target.text), row.target.id, row.target.prob)
                        on:click=move |_| show()
                        on:keydown=move |ev: web_sys::KeyboardEvent| if ev.key() == "Enter" { show() }>
                        <span class="tok">{visible(&row.target.text)}</span>
                        <span class="prob">{format!("{:.1}%", 100.0 * row.target.prob)}</span>
                    </li>
                }
            })
            .collect_view();
        let names: Vec<String> = m.columns.iter().map(|t| visible(&t.text)).collect();
        let rows_text: Vec<(String, Vec<f32>)> =
            m.rows.iter().map(|r| (visible(&r.target.text), r.scores.clone())).collect();
        let tip = move || {
            let (j, i) = hover.get()?;
            let (row, scores) = rows_text.get(j)?;
            let score = scores.get(i)?;
            Some(format!("{} → {row}: {}", names.get(i)?, short(*score as f64)))
        };
        let on_move = move |ev: web_sys::MouseEvent| {
            let (x, y) = (ev.offset_x() as f64 / cell, ev.offset_y() as f64 / cell);
            hover.set((x >= 0.0 && y >= 0.0).then_some((y as usize, x as usize)));
        };
        let on_click =
            move |ev: web_sys::MouseEvent| ui.row.set(Some((ev.offset_y() as f64 / cell) as usize));
        Some(view! {
            <section class="matrix-section">
                <h2>"The continuation, token by token"</h2>
                <p class="muted small">
                    "Each row explains one continuation token (with its probability after the tokens before it) from every earlier token; each row is coloured on its own scale. Click a row to show it on the text."
                </p>
                <div class="matrix-scroll">
                    <div class="matrix" data-testid="matrix" data-columns=m.columns.len().to_string()>
                        <div class="matrix-corner"></div>
                        <div class="matrix-columns">{header}</div>
                        <ol class="matrix-rows">{rows}</ol>
                        <div class="matrix-cells">
                            <canvas node_ref=canvas data-testid="matrix-cells" on:mousemove=on_move
                                on:mouseleave=move |_| hover.set(None) on:click=on_click></canvas>
                            <span class="matrix-tip" data-testid="matrix-tip">{tip}</span>
                        </div>
                    </div>
                </div>
            </section>
        })
    }
}

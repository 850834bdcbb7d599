//! Scores drawn on the text: one highlighted span per token, word or sentence, and the legend
//! that says what the colours mean.

use crate::engine::attribution::grouping::Granularity;
use crate::engine::model::token_text::visible;
use crate::state::format::short;
use crate::state::settings::ViewSettings;
use crate::state::view::{method_label, shown_map, spelled, units, TokenMap, Unit};
use crate::web::page::ui::Ui;
use leptos::prelude::*;
use wasm_bindgen::JsCast;

/// The `data-testid`s of a map's spans: the main map's are the page's contract; other maps on the
/// page (compared methods) use their own so they never mix with it.
#[derive(Clone, Copy)]
pub struct SpanIds {
    pub token: &'static str,
    pub group: &'static str,
}

pub const MAIN_MAP: SpanIds = SpanIds { token: "token", group: "group" };

/// A token's text as laid out in the map: a trailing newline shows as ↵ and still breaks the line.
fn laid_out(text: &str) -> String {
    match text.strip_suffix('\n') {
        Some(rest) => format!("{}↵\n", rest.trim_end_matches('\n')),
        None => text.to_string(),
    }
}

/// A unit's tooltip: its exact text, and what it is (token id or token range) with its score.
pub fn tip_text(map: &TokenMap, unit: &Unit, view: &ViewSettings) -> (String, String) {
    let tokens = &map.tokens[unit.first..=unit.last];
    if view.granularity == Granularity::Token {
        let token = &tokens[0];
        let error = unit.error.map(|e| format!(" ± {e:.1e}")).unwrap_or_default();
        return (
            visible(&token.text),
            format!("id {} · score {:.4e}{error}", token.id, unit.score),
        );
    }
    let error = unit.error.map(|e| format!(" ± ≤{}", short(e as f64))).unwrap_or_default();
    let span = match unit.first == unit.last {
        true => format!("token {}", unit.first),
        false => format!("tokens {}–{}", unit.first, unit.last),
    };
    let exact = tokens.iter().map(|t| visible(&t.text)).collect();
    (exact, format!("{span} · {} {}{error}", view.reduce.label(), short(unit.score as f64)))
}

/// Arrow keys move the focus between a read-only map's spans.
pub fn arrow_between_spans(ev: web_sys::KeyboardEvent) {
    let next = match ev.key().as_str() {
        "ArrowRight" | "ArrowDown" => true,
        "ArrowLeft" | "ArrowUp" => false,
        _ => return,
    };
    let Some(unit) = ev.target().and_then(|t| t.dyn_into::<web_sys::Element>().ok()) else {
        return;
    };
    let mut sibling =
        if next { unit.next_element_sibling() } else { unit.previous_element_sibling() };
    while let Some(s) = sibling {
        if s.class_list().contains("unit") {
            if let Ok(s) = s.dyn_into::<web_sys::HtmlElement>() {
                ev.prevent_default();
                let _ = s.focus();
            }
            return;
        }
        sibling = if next { s.next_element_sibling() } else { s.previous_element_sibling() };
    }
}

/// The spans of `map` under `view`: one per token in the token view (with a tooltip giving the
/// token's exact text, id and raw score), one `<mark>` per word or sentence otherwise. The two are
/// different elements on purpose: Leptos updates an element of the same type in place, and would
/// keep a token's `data-index` on a group.
pub fn map_spans(map: &TokenMap, view: &ViewSettings, ids: SpanIds) -> impl IntoView {
    let (units, scale) = units(map, view);
    let grouped = view.granularity != Granularity::Token;
    units
        .into_iter()
        .map(|unit| {
            let tokens = &map.tokens[unit.first..=unit.last];
            let text: String = tokens.iter().map(|t| laid_out(&t.text)).collect();
            let style = format!("background:{}", scale.colour(unit.score));
            let (norm, score) = (scale.norm(unit.score).to_string(), unit.score.to_string());
            let special = tokens.iter().any(|t| t.special);
            let (exact, what) = tip_text(map, &unit, view);
            let tip = view! {
                <span class="tip" role="tooltip"><code>{exact}</code><span>{what}</span></span>
            };
            if grouped {
                view! {
                    <mark class="unit group" class:special=special data-testid=ids.group data-first=unit.first.to_string()
                        data-last=unit.last.to_string() data-score=score data-norm=norm style=style tabindex="0">
                        {text}{tip}
                    </mark>
                }
                .into_any()
            } else {
                view! {
                    <span class="unit token" class:special=special data-testid=ids.token data-index=unit.first.to_string()
                        data-token-id=tokens[0].id.to_string() data-score=score data-norm=norm style=style tabindex="0">
                        {text}{tip}
                    </span>
                }
                .into_any()
            }
        })
        .collect_view()
}

/// What the shown map was computed for (its text and method, read from the map itself), and
/// whether that is still the editor's text and the selected method (not while a rerun is due or
/// computing): an old map stays visible until the new one arrives, and these say it is old.
pub type MapFor = Memo<Option<(String, String)>>;

pub fn map_status(ui: Ui) -> (MapFor, impl Fn() -> Option<bool> + Copy + Send + Sync + 'static) {
    let computed_for = Memo::new(move |_| {
        ui.result.with(|r| {
            r.as_ref().map(|r| (spelled(&r.attribution.tokens), r.attribution.method.clone()))
        })
    });
    let (text, method) = (ui.setting(|s| s.text.clone()), ui.setting(|s| s.method.clone()));
    let current = move || {
        computed_for.with(|f| f.as_ref().map(|(t, m)| *t == text.get() && *m == method.get()))
    };
    (computed_for, current)
}

/// A read-only map of the shown result: the embed's map of a snapshot, or (`rows_only`) a
/// continuation row's map, which covers continuation tokens the editable text does not hold.
#[component]
pub fn HeatMap(ui: Ui, testid: &'static str, #[prop(optional)] rows_only: bool) -> impl IntoView {
    let view_settings = ui.setting(|s| s.view.clone());
    let shown =
        Memo::new(move |_| ui.result.with(|r| r.as_ref().map(|r| shown_map(r, ui.row.get()))));
    let showing = move || shown.with(|s| s.as_ref().is_some_and(|s| !rows_only || s.row.is_some()));
    let (computed_for, current) = map_status(ui);
    view! {
        {move || shown.get().and_then(|s| s.row).map(|(j, text)| view! {
            <p class="row-note">
                {format!("Showing continuation token {} ({}) explained from the tokens before it. ", j + 1, visible(&text))}
                <button class="link" on:click=move |_| ui.row.set(None)>"back to the next-token map"</button>
            </p>
        })}
        <Show when=showing>
            <div class="heatmap" data-testid=testid aria-label="Input tokens coloured by attribution"
                data-text=move || computed_for.with(|f| f.as_ref().map(|(t, _)| t.clone()))
                data-method=move || computed_for.with(|f| f.as_ref().map(|(_, m)| m.clone()))
                data-current=move || current().map(|c| c.to_string()) on:keydown=arrow_between_spans>
                {move || shown.get().map(|s| map_spans(&s.map, &view_settings.get(), MAIN_MAP))}
            </div>
        </Show>
    }
}

#[component]
pub fn Legend(ui: Ui) -> impl IntoView {
    let view_settings = ui.setting(|s| s.view.clone());
    move || {
        let shown = ui.result.with(|r| r.as_ref().map(|r| shown_map(r, ui.row.get())))?;
        let view = view_settings.get();
        let (_, scale) = units(&shown.map, &view);
        let [low, mid, high] = scale.ticks();
        let grouping = match view.granularity {
            Granularity::Token => String::new(),
            g => format!("; one span per {} ({})", g.name(), view.reduce.label()),
        };
        let intensity = match view.intensity == 1.0 {
            true => String::new(),
            false => format!(", intensity ×{:.2}", view.intensity),
        };
        let colours =
            if shown.map.signed { "blue = lowers it, red = raises it" } else { "darker = larger" };
        Some(view! {
            <div class="legend" data-testid="legend" data-min=low.to_string() data-mid=mid.to_string() data-max=high.to_string()>
                <span class="scale">
                    <span class="bar" style=format!("background:{}", scale.gradient())></span>
                    <span class="ticks">{[low, mid, high].map(|t| view! { <span>{short(t as f64)}</span> }).collect_view()}</span>
                </span>
                <span class="what">
                    <strong>{format!("{} of {}", method_label(&shown.method), shown.quantity)}</strong>
                    {format!(". Colour: {}{intensity} ({colours}){grouping}.", view.normalisation.label())}
                </span>
            </div>
        })
    }
}

//! Scores drawn on the text: one highlighted span per token, word or sentence, and the legend
//! that says what the colours mean.

use super::app::Ui;
use crate::engine::grouping::{group, Granularity};
use crate::engine::methods;
use crate::engine::token_text::{text_to_bytes, visible};
use crate::engine::tokenizer::Token;
use crate::engine::TargetKind;
use crate::state::colour::{short, Scale};
use crate::state::settings::ViewSettings;
use leptos::prelude::*;

/// One map: tokens and one score each.
#[derive(Clone, Debug, PartialEq)]
pub struct TokenMap {
    pub tokens: Vec<Token>,
    pub scores: Vec<f32>,
    /// Signed scores get the diverging colour scale.
    pub signed: bool,
}

/// The map on the text and what it explains.
#[derive(Clone, Debug, PartialEq)]
struct ShownMap {
    map: TokenMap,
    method: String,
    /// The explained quantity, e.g. `p(" Paris") − p(" London")`.
    quantity: String,
    /// Set when a continuation row is shown: (row, its token's text).
    row: Option<(usize, String)>,
}

/// The `data-testid`s of a map's spans: the main map's are the page's contract; other maps on the
/// page (compared methods) use their own so they never mix with it.
#[derive(Clone, Copy)]
pub struct SpanIds {
    pub token: &'static str,
    pub group: &'static str,
}

pub const MAIN_MAP: SpanIds = SpanIds { token: "token", group: "group" };

/// How an explained quantity reads: `p(" Paris")`, or `p(" Paris") − p(" London")` with a foil.
pub fn quantity(kind: TargetKind, target: &str, foil: Option<&str>) -> String {
    let value = |text: &str| format!("{}({text:?})", kind.symbol());
    match foil {
        Some(foil) => format!("{} − {}", value(target), value(foil)),
        None => value(target),
    }
}

/// A method's label from the registry (its name if unknown).
pub fn method_label(name: &str) -> &str {
    methods::by_name(name).map(|m| m.label()).unwrap_or(name)
}

/// A highlighted span: a token, or the tokens of a word or sentence, with its score.
struct Unit {
    first: usize,
    last: usize,
    score: f32,
}

fn units(map: &TokenMap, view: &ViewSettings) -> Vec<Unit> {
    if view.granularity == Granularity::Token {
        return map
            .scores
            .iter()
            .enumerate()
            .map(|(i, s)| Unit { first: i, last: i, score: *s })
            .collect();
    }
    group(&map.tokens, &map.scores, view.granularity)
        .into_iter()
        .map(|g| Unit {
            first: g.first,
            last: g.last,
            score: view.reduce.apply(&map.scores[g.first..=g.last]),
        })
        .collect()
}

/// The spans of `map` under `view` and the scale they are coloured with (normalised over them).
fn scaled_units(map: &TokenMap, view: &ViewSettings) -> (Vec<Unit>, Scale) {
    let units = units(map, view);
    let scale = Scale::new(&units.iter().map(|u| u.score).collect::<Vec<_>>(), map.signed, view);
    (units, scale)
}

/// A token's text as laid out in the map: a trailing newline shows as ↵ and still breaks the line.
fn laid_out(text: &str) -> String {
    match text.strip_suffix('\n') {
        Some(rest) => format!("{}↵\n", rest.trim_end_matches('\n')),
        None => text.to_string(),
    }
}

/// The spans of `map` under `view`: one per token in the token view (with a tooltip giving the
/// token's exact text, id and raw score), one `<mark>` per word or sentence otherwise. The two are
/// different elements on purpose: Leptos updates an element of the same type in place, and would
/// keep a token's `data-index` on a group.
pub fn map_spans(map: &TokenMap, view: &ViewSettings, ids: SpanIds) -> impl IntoView {
    let (units, scale) = scaled_units(map, view);
    let grouped = view.granularity != Granularity::Token;
    units
        .into_iter()
        .map(|unit| {
            let tokens = &map.tokens[unit.first..=unit.last];
            let text: String = tokens.iter().map(|t| laid_out(&t.text)).collect();
            let style = format!("background:{}", scale.colour(unit.score));
            let (norm, score) = (scale.norm(unit.score).to_string(), unit.score.to_string());
            let special = tokens.iter().any(|t| t.special);
            if grouped {
                let exact: String = tokens.iter().map(|t| visible(&t.text)).collect();
                let span = match unit.first == unit.last {
                    true => format!("token {}", unit.first),
                    false => format!("tokens {}–{}", unit.first, unit.last),
                };
                view! {
                    <mark class="unit group" class:special=special data-testid=ids.group data-first=unit.first.to_string()
                        data-last=unit.last.to_string() data-score=score data-norm=norm style=style tabindex="0">
                        {text}
                        <span class="tip" role="tooltip">
                            <code>{exact}</code>
                            <span>{format!("{span} · {} {}", view.reduce.label(), short(unit.score as f64))}</span>
                        </span>
                    </mark>
                }
                .into_any()
            } else {
                let token = &tokens[0];
                view! {
                    <span class="unit token" class:special=special data-testid=ids.token data-index=unit.first.to_string()
                        data-token-id=token.id.to_string() data-score=score data-norm=norm style=style tabindex="0">
                        {text}
                        <span class="tip" role="tooltip">
                            <code>{visible(&token.text)}</code>
                            <span>{format!("id {} · score {:.4e}", token.id, unit.score)}</span>
                        </span>
                    </span>
                }
                .into_any()
            }
        })
        .collect_view()
}

/// The map on the text: the next-token map, or the continuation row chosen in the matrix.
fn shown_map(ui: Ui) -> Option<ShownMap> {
    let output = ui.result.get()?;
    let a = output.attribution;
    let row = ui.row.get().and_then(|j| {
        let continuation = a.continuation.as_ref()?;
        let row = continuation.rows.get(j)?;
        let end = continuation.output_start + j;
        Some(ShownMap {
            map: TokenMap {
                tokens: continuation.tokens[..end].to_vec(),
                scores: row.scores.clone(),
                signed: a.signed,
            },
            method: a.method.clone(),
            quantity: quantity(a.target_kind, &row.target.text, None),
            row: Some((j, row.target.text.clone())),
        })
    });
    row.or_else(|| {
        Some(ShownMap {
            quantity: quantity(
                a.target_kind,
                &a.target.text,
                a.foil.as_ref().map(|f| f.text.as_str()),
            ),
            map: TokenMap { tokens: a.tokens, scores: a.scores, signed: a.signed },
            method: a.method,
            row: None,
        })
    })
}

/// The text a run's input tokens spell (an inserted BOS covers no bytes and is left out).
fn spelled(tokens: &[Token]) -> String {
    let bytes: Vec<u8> =
        tokens.iter().filter(|t| t.byte_len > 0).flat_map(|t| text_to_bytes(&t.text)).collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

#[component]
pub fn HeatMap(ui: Ui) -> impl IntoView {
    let view_settings = ui.setting(|s| s.view.clone());
    let shown = Memo::new(move |_| shown_map(ui));
    // What the shown map was computed for, read from the map itself, and whether that is still
    // the editor's text and the selected method (not while a rerun is due or computing): an old
    // map stays visible until the new one arrives, and these say it is old.
    let computed_for = Memo::new(move |_| {
        ui.result.with(|r| {
            r.as_ref().map(|r| (spelled(&r.attribution.tokens), r.attribution.method.clone()))
        })
    });
    let (text, method) = (ui.setting(|s| s.text.clone()), ui.setting(|s| s.method.clone()));
    let current = move || {
        computed_for.with(|f| f.as_ref().map(|(t, m)| *t == text.get() && *m == method.get()))
    };
    view! {
        {move || shown.get().and_then(|s| s.row).map(|(j, text)| view! {
            <p class="row-note">
                {format!("Showing continuation token {} ({}) explained from the tokens before it. ", j + 1, visible(&text))}
                <button class="link" on:click=move |_| ui.row.set(None)>"back to the next-token map"</button>
            </p>
        })}
        <div class="heatmap" data-testid="heatmap" aria-label="Input tokens coloured by attribution"
            data-text=move || computed_for.with(|f| f.as_ref().map(|(t, _)| t.clone()))
            data-method=move || computed_for.with(|f| f.as_ref().map(|(_, m)| m.clone()))
            data-current=move || current().map(|c| c.to_string())>
            {move || shown.get().map(|s| map_spans(&s.map, &view_settings.get(), MAIN_MAP))}
        </div>
    }
}

#[component]
pub fn Legend(ui: Ui) -> impl IntoView {
    let view_settings = ui.setting(|s| s.view.clone());
    move || {
        let shown = shown_map(ui)?;
        let view = view_settings.get();
        let (_, scale) = scaled_units(&shown.map, &view);
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

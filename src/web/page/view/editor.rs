//! The text, which is also the map: a textarea (so typing, selection, IME, paste, undo and screen
//! readers are the browser's own) over a copy of its text laid out identically, whose spans are
//! shaded by the shown map. The copy is cut by `state::editor_map`, so shading follows edits and
//! leaves the characters whose tokens may have changed. The spans sit under the textarea, so one
//! tooltip above both shows the span under the pointer, or at the caret after a click, a tap or
//! a move (Alt+arrows jump between spans). Also the continuation field.

use crate::engine::attribution::grouping::Granularity;
use crate::state::colour::Scale;
use crate::state::editor_map::{byte_of, next_unit_start, pieces, unit_at, utf16_of, Piece};
use crate::state::settings::ViewSettings;
use crate::state::view::{shown_map, spelled, units, TokenMap, Unit};
use crate::web::page::ui::{Rerun, Ui};
use crate::web::page::view::heatmap::{map_status, tip_text, MAIN_MAP};
use leptos::html;
use leptos::prelude::*;
use wasm_bindgen::JsCast;

/// The map as drawn on the text: the units of the shown map and the pieces of the current text.
#[derive(Clone, PartialEq)]
struct Drawn {
    map: TokenMap,
    units: Vec<Unit>,
    scale: Scale,
    pieces: Vec<Piece>,
    view: ViewSettings,
}

/// Where the tooltip shows: over unit `unit`, at (left, top) in the editor box; `caret`: put there
/// by the caret (kept while the pointer moves elsewhere).
#[derive(Clone, Copy, PartialEq)]
struct Tip {
    unit: usize,
    left: f64,
    top: f64,
    caret: bool,
}

#[component]
pub fn Editor(ui: Ui) -> impl IntoView {
    let text = ui.setting(|s| s.text.clone());
    let continuation = ui.setting(|s| s.continuation.clone());
    let view_settings = ui.setting(|s| s.view.clone());
    let (computed_for, current) = map_status(ui);
    // The next-token map; while a continuation row is shown, its own map (below) has the spans.
    let drawn = Memo::new(move |_| {
        let text = text.get();
        let shown = ui.result.with(|r| r.as_ref().map(|r| shown_map(r, None)));
        let Some(shown) = shown.filter(|_| ui.row.get().is_none()) else {
            let plain = vec![Piece { text, unit: None }];
            return Drawn {
                map: TokenMap::default(),
                units: vec![],
                scale: Scale::new(&[], false, &ViewSettings::default()),
                pieces: plain,
                view: ViewSettings::default(),
            };
        };
        let view = view_settings.get();
        let (units, scale) = units(&shown.map, &view);
        let pieces = pieces(&text, &spelled(&shown.map.tokens), &shown.map.tokens, &units);
        Drawn { map: shown.map, units, scale, pieces, view }
    });
    let tip = RwSignal::new(None::<Tip>);
    let (area, shading, frame) = (
        NodeRef::<html::Textarea>::new(),
        NodeRef::<html::Div>::new(),
        NodeRef::<html::Div>::new(),
    );
    // The text comes from the settings (a link, an example, undoing an example) only when it
    // differs: setting a textarea's value, even to the same text, splits the browser's undo steps.
    Effect::new(move |_| {
        let text = text.get();
        if let Some(area) = area.get() {
            if area.value() != text {
                area.set_value(&text);
            }
        }
    });

    // The tooltip over the span `element` (one of the shading's).
    let show_over = move |element: web_sys::Element, caret: bool| {
        let (Some(frame), Some(unit)) = (frame.get(), element.get_attribute("data-unit")) else {
            return;
        };
        let Ok(unit) = unit.parse() else { return };
        let (r, f) = (element.get_bounding_client_rect(), frame.get_bounding_client_rect());
        tip.set(Some(Tip {
            unit,
            left: r.left() - f.left(),
            top: r.bottom() - f.top() + 2.0,
            caret,
        }));
    };
    let at_caret = move || {
        let (Some(area), Some(shading)) = (area.get(), shading.get()) else { return };
        let Ok(Some(start)) = area.selection_start() else { return };
        let value = area.value();
        let unit = drawn.with_untracked(|d| unit_at(&d.pieces, byte_of(&value, start as usize)));
        match unit
            .and_then(|u| shading.query_selector(&format!("[data-unit=\"{u}\"]")).ok().flatten())
        {
            Some(element) => show_over(element, true),
            None => tip.set(None),
        }
    };
    let on_pointer = move |ev: web_sys::MouseEvent| {
        let Some(shading) = shading.get() else { return };
        let under = document().elements_from_point(ev.client_x() as f32, ev.client_y() as f32);
        let span = under
            .iter()
            .filter_map(|e| e.dyn_into::<web_sys::Element>().ok())
            .find(|e| e.has_attribute("data-unit") && shading.contains(Some(e.as_ref())));
        match span {
            Some(span) => show_over(span, false),
            None if tip.with_untracked(|t| t.is_some_and(|t| !t.caret)) => tip.set(None),
            None => {}
        }
    };
    let on_key = move |ev: web_sys::KeyboardEvent| {
        if run_on_ctrl_enter(ui, &ev) {
            return;
        }
        if ev.key() == "Escape" {
            tip.set(None);
        } else if ev.alt_key() && matches!(ev.key().as_str(), "ArrowLeft" | "ArrowRight") {
            let Some(area) = area.get() else { return };
            let value = area.value();
            let at = byte_of(&value, area.selection_start().ok().flatten().unwrap_or(0) as usize);
            let forward = ev.key() == "ArrowRight";
            if let Some(to) = drawn.with_untracked(|d| next_unit_start(&d.pieces, at, forward)) {
                ev.prevent_default();
                let to = utf16_of(&value, to) as u32;
                let _ = area.set_selection_range(to, to);
                at_caret();
            }
        }
    };
    let on_key_up = move |ev: web_sys::KeyboardEvent| {
        let moves = [
            "ArrowLeft",
            "ArrowRight",
            "ArrowUp",
            "ArrowDown",
            "Home",
            "End",
            "PageUp",
            "PageDown",
        ];
        if moves.contains(&ev.key().as_str()) {
            at_caret();
        }
    };
    let tip_view = move || {
        let t = tip.get()?;
        drawn.with(|d| {
            let unit = d.units.get(t.unit)?;
            let (exact, what) = tip_text(&d.map, unit, &d.view);
            Some(view! {
                <div class="editor-tip" data-testid="editor-tip" data-unit=t.unit.to_string()
                    style=format!("left:{:.0}px;top:{:.0}px", t.left.max(0.0), t.top)>
                    <code>{exact}</code><span>{what}</span>
                </div>
            })
        })
    };
    view! {
        <section class="editor">
            <label for="editor">"Text (the model predicts the token that comes next; its tokens are shaded by the map)"</label>
            <div class="editor-box" data-testid="heatmap" node_ref=frame
                data-text=move || computed_for.with(|f| f.as_ref().map(|(t, _)| t.clone()))
                data-method=move || computed_for.with(|f| f.as_ref().map(|(_, m)| m.clone()))
                data-current=move || current().map(|c| c.to_string())>
                <div class="editor-map" data-testid="editor-map" aria-hidden="true" node_ref=shading>
                    {move || drawn.with(|d| d.pieces.iter().map(|p| piece_view(d, p)).collect_view())}
                    // keeps a last empty line as tall as the textarea's
                    "\u{200b}"
                </div>
                <textarea id="editor" data-testid="editor" spellcheck="false" node_ref=area aria-describedby="editor-tip"
                    on:keydown=on_key on:keyup=on_key_up
                    on:click=move |_| at_caret() on:blur=move |_| tip.set(None)
                    on:mousemove=on_pointer on:mouseleave=move |_| tip.update(|t| if t.is_some_and(|t| !t.caret) { *t = None })
                    on:input=move |ev| {
                        tip.set(None);
                        let text = event_target_value(&ev);
                        ui.change(move |s| s.text = text, Rerun::AfterPause);
                    }></textarea>
                <div id="editor-tip" role="status" aria-live="polite" class="editor-tip-anchor">{tip_view}</div>
            </div>
            <div class="continuation-row">
            <label for="continuation" title="Optional: each of its tokens is explained from everything before it">"Continuation"</label>
            <textarea id="continuation" data-testid="continuation" rows="1" spellcheck="false"
                placeholder="optional: text after it, each of its tokens explained from everything before it"
                prop:value=move || continuation.get()
                on:keydown=move |ev: web_sys::KeyboardEvent| { run_on_ctrl_enter(ui, &ev); }
                on:input=move |ev| {
                    let continuation = event_target_value(&ev);
                    ui.change(move |s| s.continuation = continuation, Rerun::AfterPause);
                }></textarea>
            </div>
        </section>
    }
}

/// Ctrl/⌘+Enter in either text field runs now; whether it was that key.
fn run_on_ctrl_enter(ui: Ui, ev: &web_sys::KeyboardEvent) -> bool {
    let run = ev.key() == "Enter" && (ev.ctrl_key() || ev.meta_key());
    if run {
        ev.prevent_default();
        ui.run();
    }
    run
}

/// One piece of the text: plain, or a shaded span with the main map's test ids (a token, or a
/// word or sentence), empty for a token without characters of its own (drawn as a marker).
fn piece_view(d: &Drawn, piece: &Piece) -> AnyView {
    let Some(k) = piece.unit else { return piece.text.clone().into_any() };
    let unit = &d.units[k];
    let style = format!("background:{}", d.scale.colour(unit.score));
    let (norm, score) = (d.scale.norm(unit.score).to_string(), unit.score.to_string());
    let error = unit.error.map(|e| e.to_string());
    let tokens = &d.map.tokens[unit.first..=unit.last];
    let special = tokens.iter().any(|t| t.special);
    let marker = piece.text.is_empty();
    match d.view.granularity == Granularity::Token {
        true => view! {
            <span class="unit token" class:special=special class:marker=marker data-testid=MAIN_MAP.token data-unit=k.to_string()
                data-index=unit.first.to_string() data-token-id=tokens[0].id.to_string() data-score=score data-error=error data-norm=norm style=style>
                {piece.text.clone()}
            </span>
        }
        .into_any(),
        false => view! {
            <mark class="unit group" class:special=special class:marker=marker data-testid=MAIN_MAP.group data-unit=k.to_string()
                data-first=unit.first.to_string() data-last=unit.last.to_string() data-score=score data-error=error data-norm=norm style=style>
                {piece.text.clone()}
            </mark>
        }
        .into_any(),
    }
}

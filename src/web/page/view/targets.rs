//! What is explained: the next-token predictions (click one to explain it, shift-click or
//! "compare with…" to explain its difference from the target), the quantity, the foil.

use crate::engine::model::token_text::visible;
use crate::engine::{TargetChoice, TargetKind};
use crate::state::format::short;
use crate::state::view::quantity;
use crate::web::page::ui::{Rerun, Ui};
use leptos::prelude::*;

fn kind_label(kind: TargetKind) -> &'static str {
    match kind {
        TargetKind::Prob => "probability p",
        TargetKind::LogProb => "log-probability log p",
        TargetKind::Logit => "logit",
    }
}

/// Makes token `id` the target, or the foil. A token cannot be both: choosing the foil as target
/// drops the foil, and the target cannot become the foil.
fn choose(ui: Ui, id: u32, as_foil: bool) {
    let target_id = ui.result.with_untracked(|r| r.as_ref().map(|r| r.attribution.target.id));
    if as_foil && target_id == Some(id) {
        return;
    }
    ui.change(
        |s| match as_foil {
            true => s.foil = Some(TargetChoice::Id(id)),
            false => {
                s.target = TargetChoice::Id(id);
                if s.foil == Some(TargetChoice::Id(id)) {
                    s.foil = None;
                }
            }
        },
        Rerun::Now,
    );
}

#[component]
pub fn Predictions(ui: Ui) -> impl IntoView {
    view! {
        <div class="predictions">
            <h2>"Next-token predictions"</h2>
            <ol data-testid="topk" class="topk">
                {move || ui.result.get().map(|output| {
                    let a = output.attribution.clone();
                    let (target_id, foil_id) = (a.target.id, a.foil.map(|f| f.id));
                    let top = a.top_k.first().map(|p| p.prob).unwrap_or(1.0).max(f32::MIN_POSITIVE);
                    a.top_k.into_iter().map(|p| {
                        let id = p.id;
                        let on_click = move |ev: web_sys::MouseEvent| choose(ui, id, ev.shift_key());
                        view! {
                            <li class:chosen=id == target_id class:foil=Some(id) == foil_id>
                                <button class="prediction" data-testid="prediction" data-token-id=id.to_string()
                                    data-prob=p.prob.to_string() on:click=on_click
                                    title=format!("id {id}: click to explain this token; shift-click to compare the target with it")>
                                    <span class="tok">{visible(&p.text)}</span>
                                    <span class="prob-bar"><span style=format!("width:{:.1}%", 100.0 * p.prob / top)></span></span>
                                    <span class="prob">{format!("{:.1}%", 100.0 * p.prob)}</span>
                                </button>
                                <button class="foil-button" data-testid="foil-button" data-token-id=id.to_string()
                                    disabled=id == target_id on:click=move |_| choose(ui, id, true)
                                    title="explain the target's difference from this token">
                                    "compare with…"
                                </button>
                            </li>
                        }
                    }).collect_view()
                })}
            </ol>
        </div>
    }
}

#[component]
pub fn TargetPanel(ui: Ui) -> impl IntoView {
    let kind = ui.setting(|s| s.kind);
    let explicit = ui.setting(|s| s.target != TargetChoice::TopPrediction);
    let has_foil = ui.setting(|s| s.foil.is_some());
    let target = move || ui.result.get().map(|r| r.attribution.target.clone());
    let foil = move || ui.result.get().and_then(|r| r.attribution.foil.clone());
    let on_target_key = move |ev: web_sys::KeyboardEvent| {
        if ev.key() == "Enter" {
            let value = event_target_value(&ev);
            if !value.is_empty() {
                ui.change(|s| s.target = TargetChoice::Text(value), Rerun::Now);
            }
        }
    };
    let on_kind = move |ev| {
        if let Some(kind) = TargetKind::from_name(&event_target_value(&ev)) {
            ui.change(|s| s.kind = kind, Rerun::Now);
        }
    };
    let explained = move || {
        ui.result.get().map(|r| {
            let a = &r.attribution;
            let foil = a.foil.as_ref().map(|f| f.text.as_str());
            format!("f = {} = {}", quantity(a.target_kind, &a.target.text, foil), short(a.value))
        })
    };
    view! {
        <div class="target-panel">
            <h2>"What is explained"</h2>
            <p data-testid="target" data-token-id=move || target().map(|t| t.id.to_string()).unwrap_or_default()>
                "Target: "
                {move || target().map(|t| view! {
                    <strong class="tok">{visible(&t.text)}</strong>
                    {format!(" (id {}, p = {:.4})", t.id, t.prob)}
                })}
                {move || (!explicit.get()).then_some(" — the top prediction")}
                <Show when=move || explicit.get()>
                    " "
                    <button class="link" on:click=move |_| ui.change(|s| s.target = TargetChoice::TopPrediction, Rerun::Now)>
                        "use the top prediction"
                    </button>
                </Show>
            </p>
            <input data-testid="target-input" placeholder="or type a token, e.g. \" London\", and press Enter"
                on:keydown=on_target_key/>
            <label class="inline">"Quantity "
                <select data-testid="target-kind" on:change=on_kind prop:value=move || kind.get().name()>
                    {TargetKind::ALL.map(|k| view! { <option value=k.name()>{kind_label(k)}</option> }).collect_view()}
                </select>
            </label>
            <Show when=move || has_foil.get()
                fallback=|| view! { <p class="hint">"Shift-click a prediction, or use its “compare with…” button, to explain the target’s difference from it."</p> }>
                <p class="foil-row" data-testid="foil" data-token-id=move || foil().map(|f| f.id.to_string()).unwrap_or_default()>
                    "Foil: "
                    {move || foil().map(|f| view! {
                        <strong class="tok">{visible(&f.text)}</strong>
                        {format!(" (id {}, p = {:.4})", f.id, f.prob)}
                    })}
                    " "
                    <button class="link" data-testid="remove-foil" on:click=move |_| ui.change(|s| s.foil = None, Rerun::Now)>
                        "remove foil"
                    </button>
                </p>
            </Show>
            <p class="quantity" data-testid="quantity">{explained}</p>
        </div>
    }
}

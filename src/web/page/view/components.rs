//! "Which parts of the model wrote it?": component attribution of the text and target on the
//! page. A block × head grid of each head's share of the explained logit with the block's MLP
//! and biases beside it (signed colours; a head's cell shows its attention from the last position
//! over the tokens when chosen), the logit lens (one row per block: p(target) as a bar, its rank,
//! the top tokens), and the token × block map; downloadable as `salient components --json` gives
//! them.

use crate::engine::attribution::components::{ComponentKind, Components};
use crate::engine::model::token_text::visible;
use crate::state::colour::Scale;
use crate::state::format::short;
use crate::state::settings::ViewSettings;
use crate::web::page::files::download_text;
use crate::web::page::ui::{ComponentsState, Ui};
use leptos::prelude::*;

#[component]
pub fn ComponentsPanel(ui: Ui) -> impl IntoView {
    let can_run = move || ui.model.with(Option::is_some);
    view! {
        <details class="components-panel" data-testid="components-panel">
            <summary>"Which parts of the model wrote it?"</summary>
            <p class="muted">"Each attention head's, MLP's and bias's share of the target's logit (minus the foil's): what it writes into the residual stream at the last position, read through the final norm with its scale held, so the shares add up to the logit. Then the logit lens (the stream after each block, read as the last one is) and how much each token matters at each depth (gradient × activation)."</p>
            <button data-testid="components-run" disabled=move || !can_run() on:click=move |_| ui.explain_components()>"Compute the components"</button>
            {move || match ui.components.get() {
                None => None,
                Some(ComponentsState::Running) => Some(view! { <p data-testid="components-state" data-state="running">"Computing (Cancel stops it)…"</p> }.into_any()),
                Some(ComponentsState::Stopped) => Some(view! { <p data-testid="components-state" data-state="stopped">"Stopped."</p> }.into_any()),
                Some(ComponentsState::Failed(why)) => Some(view! { <p class="error" data-testid="components-state" data-state="error">{why}</p> }.into_any()),
                Some(ComponentsState::Done { result, ms }) => Some(view! {
                    <p data-testid="components-state" data-state="done" data-ms=ms.to_string()>{format!("Computed in {:.1} s.", ms / 1000.0)}</p>
                    <button data-testid="components-export" on:click=move |_| export(ui)>"Download as JSON"</button>
                    <ComponentsView result=*result/>
                }.into_any()),
            }}
        </details>
    }
}

/// The shown components as JSON: the same fields as `salient components --json`.
fn export(ui: Ui) {
    let Some(ComponentsState::Done { result, .. }) = ui.components.get_untracked() else {
        return;
    };
    let mut json = serde_json::to_value(&*result).unwrap_or_default();
    json["salient"] = env!("CARGO_PKG_VERSION").into();
    json["model"] = serde_json::to_value(ui.model.get_untracked()).unwrap_or_default();
    json["target_kind"] =
        serde_json::to_value(ui.settings.get_untracked().kind).unwrap_or_default();
    let _ = download_text(&json.to_string(), "application/json", "salient-components.json");
}

#[component]
fn ComponentsView(result: Components) -> impl IntoView {
    let result = std::sync::Arc::new(result);
    let chosen = RwSignal::new(None::<(usize, usize)>);
    let layers = result.logit_lens.len();
    let heads = result.attention.first().map_or(0, Vec::len);
    let values: Vec<f32> = result.components.iter().map(|c| c.value as f32).collect();
    let scale = Scale::new(&values, true, &ViewSettings::default());
    let foil = result.foil.as_ref().map(|f| format!(" − logit({:?})", f.text)).unwrap_or_default();
    let summary = format!(
        "logit({:?}){foil} = {} = Σ of the shares below (residual {:.1e}).",
        result.target.text,
        short(result.logit),
        result.residual
    );
    let outside: Vec<_> = result.components.iter().filter(|c| c.layer.is_none()).cloned().collect();
    let cell = {
        move |c: &crate::engine::attribution::components::Component| {
            let kind = format!("{:?}", c.kind).to_lowercase();
            let title = match (c.layer, c.head) {
                (Some(l), Some(h)) => format!(
                    "block {l}, head {h} (key/value head {}): {:+.4}",
                    c.kv_head.unwrap_or(0),
                    c.value
                ),
                (Some(l), None) => format!("block {l}, {kind}: {:+.4}", c.value),
                (None, _) => format!("{kind}: {:+.4}", c.value),
            };
            (kind, title, format!("background:{}", scale.colour(c.value as f32)))
        }
    };
    let grid = {
        let result = result.clone();
        (0..layers)
            .map(|layer| {
                let row: Vec<_> = result.components.iter().filter(|c| c.layer == Some(layer)).cloned().collect();
                view! {
                    <tr>
                        <th>{layer.to_string()}</th>
                        {row.into_iter().map(|c| {
                            let (kind, title, style) = cell(&c);
                            let head = c.head;
                            let selected = move || head.is_some() && chosen.get() == head.map(|h| (layer, h));
                            view! {
                                <td class="component" class:chosen=selected data-testid="component" data-kind=kind.clone() data-layer=layer.to_string()
                                    data-head=head.map(|h| h.to_string()).unwrap_or_default() data-value=c.value.to_string()
                                    title=title style=style tabindex="0"
                                    on:click=move |_| if let Some(h) = head { chosen.set(Some((layer, h))) }>
                                    {match c.kind { ComponentKind::Head => String::new(), _ => kind.chars().next().unwrap_or(' ').to_uppercase().collect() }}
                                </td>
                            }
                        }).collect_view()}
                    </tr>
                }
            })
            .collect_view()
    };
    let lens = result.logit_lens.iter().map(|l| {
        let top = l.top.iter().map(|p| format!("{} {:.0} %", visible(&p.text), 100.0 * p.prob)).collect::<Vec<_>>().join(" · ");
        view! {
            <tr data-testid="logit-lens-row" data-layer=l.layer.to_string() data-prob=l.prob.to_string() data-rank=l.rank.to_string()>
                <th>{l.layer.to_string()}</th>
                <td class="bar-cell"><span class="bar" style=format!("width:{:.1}%", 100.0 * l.prob)></span></td>
                <td>{format!("{:.3}", l.prob)}</td>
                <td>{format!("#{}", l.rank + 1)}</td>
                <td class="lens-top">{top}</td>
            </tr>
        }
    }).collect_view();
    let saliency_scale = {
        let all: Vec<f32> = result.layer_saliency.iter().flatten().copied().collect();
        Scale::new(&all, true, &ViewSettings::default())
    };
    let token_header = result
        .tokens
        .iter()
        .map(|t| view! { <th class="token-head">{visible(&t.text)}</th> })
        .collect_view();
    let saliency = result.layer_saliency.iter().enumerate().map(|(layer, row)| {
        view! {
            <tr data-testid="layer-row" data-layer=layer.to_string()>
                <th>{layer.to_string()}</th>
                {row.iter().map(|v| view! { <td data-value=v.to_string() style=format!("background:{}", saliency_scale.colour(*v)) title=format!("{v:+.4e}")></td> }).collect_view()}
            </tr>
        }
    }).collect_view();
    let attention = {
        let result = result.clone();
        move || {
            let (layer, head) = chosen.get()?;
            let weights = result.attention.get(layer)?.get(head)?.clone();
            let scale = Scale::new(&weights, false, &ViewSettings::default());
            Some(view! {
                <p data-testid="head-attention" data-layer=layer.to_string() data-head=head.to_string()>
                    {format!("Block {layer}, head {head}: attention from the last position. ")}
                    {result.tokens.iter().zip(weights).map(|(t, w)| view! {
                        <span class="unit" data-weight=w.to_string() title=format!("{w:.4}") style=format!("background:{}", scale.colour(w))>{visible(&t.text)}</span>
                    }).collect_view()}
                </p>
            })
        }
    };
    view! {
        <section class="components" data-testid="components" data-logit=result.logit.to_string() data-residual=result.residual.to_string()>
            <p>{summary}</p>
            <p class="muted">{outside.iter().map(|c| format!("{}: {:+.4}", if c.kind == ComponentKind::Embed { "embedding" } else { "final norm bias" }, c.value)).collect::<Vec<_>>().join(" · ")}</p>
            <div class="scroll">
                <table class="component-grid">
                    <thead><tr><th>"block"</th>{(0..heads).map(|h| view! { <th>{format!("H{h}")}</th> }).collect_view()}<th>"bias"</th><th>"MLP"</th></tr></thead>
                    <tbody>{grid}</tbody>
                </table>
            </div>
            <p class="muted">"Click a head to see its attention on the text."</p>
            {attention}
            <h4>"Logit lens: p(target) after each block"</h4>
            <table class="logit-lens"><tbody>{lens}</tbody></table>
            <h4>"Each token at each depth (gradient × activation)"</h4>
            <div class="scroll">
                <table class="layer-map"><thead><tr><th></th>{token_header}</tr></thead><tbody>{saliency}</tbody></table>
            </div>
        </section>
    }
}

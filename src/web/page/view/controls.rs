//! The inputs beside the text (`editor`): the method and the settings it reads, Run and Cancel,
//! and how the map is shown. Each writes one part of `Settings` through `Ui::change`.

use crate::engine::attribution::grouping::Granularity;
use crate::engine::attribution::methods::{Param, METHODS};
use crate::engine::attribution::problem::Baseline;
use crate::state::backend::BackendChoice;
use crate::state::settings::{Normalisation, Reduce, Settings};
use crate::web::page::ui::{Rerun, Ui};
use crate::web::page::view::collapsible::Collapsible;
use leptos::prelude::*;
use std::str::FromStr;

#[component]
pub fn MethodControls(ui: Ui) -> impl IntoView {
    let method = ui.setting(|s| s.method.clone());
    let in_use = ui.setting(Settings::params_in_use);
    let faithfulness = ui.setting(|s| s.faithfulness);
    let on_method = move |ev| {
        let method = event_target_value(&ev);
        ui.change(move |s| s.method = method, Rerun::Now);
    };
    let params = move || {
        let (layers, heads) =
            ui.model.get().map(|m| (m.config.layers, m.config.heads)).unwrap_or_default();
        let controls = in_use.get();
        (!controls.is_empty()).then(|| view! {
            <Collapsible ui=ui name="settings" title="Method settings">
                <div class="control-row">
                    {controls.into_iter().map(|p| param_control(ui, p, layers, heads)).collect_view()}
                </div>
            </Collapsible>
        })
    };
    view! {
        <section class="controls">
            <div class="control-row">
                <label>"Method "
                    <select data-testid="method" on:change=on_method prop:value=move || method.get()>
                        {METHODS.iter().map(|m| view! {
                            <option value=m.name() selected=m.name() == method.get_untracked()>{m.label()}</option>
                        }).collect_view()}
                    </select>
                </label>
                <button data-testid="run" on:click=move |_| ui.run() title="Ctrl+Enter">"Run"</button>
                <button data-testid="cancel" on:click=move |_| ui.cancel() disabled=move || !ui.cancellable()>"Cancel"</button>
                <label title="Where the model computes: auto takes this browser's GPU (WebGPU) when it offers one. Kept in this browser, not in links.">
                    "Compute on "
                    <select data-testid="backend" prop:value=move || ui.backend.get().name()
                        on:change=move |ev| {
                            if let Some(choice) = BackendChoice::from_name(&event_target_value(&ev)) {
                                ui.choose_backend(choice);
                            }
                        }>
                        {BackendChoice::ALL.map(|c| view! {
                            <option value=c.name() selected=c == ui.backend.get_untracked()>{c.label()}</option>
                        }).collect_view()}
                    </select>
                </label>
                <label title="After the map: replace its top tokens by the baseline and watch the target's probability">
                    <input type="checkbox" data-testid="faithfulness-toggle" prop:checked=move || faithfulness.get()
                        on:change=move |ev| {
                            let on = event_target_checked(&ev);
                            ui.change(move |s| s.faithfulness = on, Rerun::Now);
                        }/>
                    " measure faithfulness"
                </label>
            </div>
            {params}
        </section>
    }
}

/// The input for one method setting. Number fields write every parseable edit (the run follows
/// after a pause) and show a value set elsewhere (Refine); what the person types stays as typed.
fn param_control(ui: Ui, param: Param, layers: usize, heads: usize) -> AnyView {
    let p = ui.settings.with_untracked(|s| s.params.clone());
    match param {
        Param::Steps => number_input(ui, param, "steps", |s| s.params.steps, "1", "Integrated gradients: the most gradients the path integral may take (it stops earlier once the scores add up)",
            |s, v: usize| s.params.steps = v),
        Param::Samples => number_input(ui, param, "samples", |s| s.params.samples, "1", "SmoothGrad: noisy copies averaged",
            |s, v: usize| s.params.samples = v),
        Param::Sigma => number_input(ui, param, "σ", |s| s.params.sigma, "0.01", "SmoothGrad: noise standard deviation, as a fraction of the embeddings' RMS",
            |s, v: f32| s.params.sigma = v),
        Param::Seed => number_input(ui, param, "seed", |s| u32::try_from(s.params.seed).unwrap_or(u32::MAX), "1", "Seed of SmoothGrad's noise, of the coalitions KernelSHAP, LIME and Shapley sampling draw, and of the faithfulness check's random orders",
            |s: &mut Settings, v: u32| s.params.seed = v.into()),
        Param::Baseline => choice_select(ui, param, "baseline", "What replaces a token where the method needs “no information”: the start of integrated gradients' path, occlusion, the features a coalition leaves out, the faithfulness check",
            &Baseline::ALL, Baseline::name, |b| match b {
                Baseline::Pad => "pad token embedding (default)".into(),
                Baseline::Zero => "zero vector".into(),
            },
            |s| s.params.baseline, |s, b| s.params.baseline = b),
        Param::Budget => number_input(ui, param, "budget", |s| s.params.budget, "1", "KernelSHAP, LIME, Shapley sampling: the most coalitions evaluated, one forward pass each (more: smaller standard errors, longer runs)",
            |s, v: usize| s.params.budget = v),
        Param::Features => choice_select(ui, param, "features", "What one player of the game is: each coalition keeps some features and replaces the rest by the baseline, and the model reruns. The view's grouping only redraws",
            &Granularity::ALL, Granularity::name, |g| format!("{}s", g.name()),
            |s| s.params.features, |s, g| s.params.features = g),
        Param::Layer => index_select(ui, param, "layer", layers, p.layer,
            "Attention: the layer read. Rollout: the flow through layers 0 to this one. “mean”: all layers",
            |s, v| s.params.layer = v),
        Param::Head => index_select(ui, param, "head", heads, p.head, "The attention head read; “mean”: the mean over heads",
            |s, v| s.params.head = v),
    }
}

fn test_id(param: Param) -> String {
    format!("param-{}", param.name())
}

fn number_input<T: FromStr + ToString + PartialEq + Clone + Send + Sync + 'static>(
    ui: Ui,
    param: Param,
    label: &'static str,
    get: fn(&Settings) -> T,
    step: &'static str,
    title: &'static str,
    set: fn(&mut Settings, T),
) -> AnyView {
    let input = NodeRef::<leptos::html::Input>::new();
    let current = ui.setting(get);
    Effect::new(move |_| {
        let value = current.get();
        if let Some(field) = input.get() {
            if field.value().trim().parse::<T>().ok() != Some(value.clone()) {
                field.set_value(&value.to_string());
            }
        }
    });
    view! {
        <label title=title>{label}" "
            <input type="number" class="number" data-testid=test_id(param) min="0" step=step node_ref=input
                value=current.get_untracked().to_string()
                on:input=move |ev| {
                    if let Ok(v) = event_target_value(&ev).trim().parse::<T>() {
                        ui.change(move |s| set(s, v), Rerun::AfterPause);
                    }
                }/>
        </label>
    }
    .into_any()
}

/// A select of the `choices` of one setting, shown by `label_of`, named by `name`.
#[allow(clippy::too_many_arguments)]
fn choice_select<T: Copy + PartialEq + Send + Sync + 'static>(
    ui: Ui,
    param: Param,
    label: &'static str,
    title: &'static str,
    choices: &'static [T],
    name: fn(T) -> &'static str,
    label_of: fn(T) -> String,
    get: fn(&Settings) -> T,
    set: fn(&mut Settings, T),
) -> AnyView {
    let current = ui.setting(get);
    view! {
        <label title=title>{label}" "
            <select data-testid=test_id(param) prop:value=move || name(current.get())
                on:change=move |ev| {
                    let chosen = event_target_value(&ev);
                    if let Some(&c) = choices.iter().find(|&&c| name(c) == chosen) {
                        ui.change(move |s| set(s, c), Rerun::AfterPause);
                    }
                }>
                {choices.iter().map(|&c| view! {
                    <option value=name(c) selected=c == current.get_untracked()>{label_of(c)}</option>
                }).collect_view()}
            </select>
        </label>
    }
    .into_any()
}

/// A layer or head: "mean" (all of them) or one index below `count`.
fn index_select(
    ui: Ui,
    param: Param,
    label: &'static str,
    count: usize,
    current: Option<usize>,
    title: &'static str,
    set: fn(&mut Settings, Option<usize>),
) -> AnyView {
    view! {
        <label title=title>{label}" "
            <select data-testid=test_id(param)
                on:change=move |ev| {
                    let index = event_target_value(&ev).parse::<usize>().ok();
                    ui.change(move |s| set(s, index), Rerun::AfterPause);
                }>
                <option value="mean" selected=current.is_none()>"mean"</option>
                {(0..count).map(|i| view! { <option value=i.to_string() selected=current == Some(i)>{i.to_string()}</option> }).collect_view()}
            </select>
        </label>
    }
    .into_any()
}

#[component]
pub fn ViewControls(ui: Ui) -> impl IntoView {
    let view_settings = ui.setting(|s| s.view.clone());
    let granularity = move || view_settings.get().granularity.name();
    let reduce = move || view_settings.get().reduce.name();
    let normalisation = move || view_settings.get().normalisation.name();
    let intensity = move || view_settings.get().intensity;
    view! {
        <div class="view-controls">
            <label>"Show per "
                <select data-testid="granularity" prop:value=granularity
                    on:change=move |ev| { if let Some(g) = Granularity::from_name(&event_target_value(&ev)) {
                        ui.change(move |s| s.view.granularity = g, Rerun::Never);
                    } }>
                    {Granularity::ALL.map(|g| view! { <option value=g.name()>{g.name()}</option> }).collect_view()}
                </select>
            </label>
            <label title="How the scores of a word's or sentence's tokens become one">"group score "
                <select data-testid="reduce" prop:value=reduce
                    on:change=move |ev| { if let Some(r) = Reduce::from_name(&event_target_value(&ev)) {
                        ui.change(move |s| s.view.reduce = r, Rerun::Never);
                    } }>
                    {Reduce::ALL.map(|r| view! { <option value=r.name()>{r.label()}</option> }).collect_view()}
                </select>
            </label>
            <label>"colour "
                <select data-testid="normalisation" prop:value=normalisation
                    on:change=move |ev| { if let Some(n) = Normalisation::from_name(&event_target_value(&ev)) {
                        ui.change(move |s| s.view.normalisation = n, Rerun::Never);
                    } }>
                    {Normalisation::ALL.map(|n| view! { <option value=n.name()>{n.label()}</option> }).collect_view()}
                </select>
            </label>
            <label title="Colour strength: at ×2, half the largest score already gets the full colour">"intensity "
                <input type="range" data-testid="intensity" min="0.2" max="5" step="0.1" prop:value=move || intensity().to_string()
                    on:input=move |ev| { if let Ok(v) = event_target_value(&ev).parse::<f32>() {
                        ui.change(move |s| s.view.intensity = v, Rerun::Never);
                    } }/>
                <output>{move || format!("×{:.1}", intensity())}</output>
            </label>
        </div>
    }
}

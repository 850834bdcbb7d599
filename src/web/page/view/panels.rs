//! Small read-outs around the map: the status line, the completeness check, timings, the model.

use crate::engine::attribution::methods::{gradients_for_goal, COMPLETENESS_GOAL};
use crate::state::format::megabytes;
use crate::state::format::short;
use crate::web::address::foreign_host;
use crate::web::page::ui::{Phase, Rerun, Ui};
use crate::web::protocol::Timings;
use leptos::prelude::*;

#[component]
pub fn Status(ui: Ui) -> impl IntoView {
    let loaded = move || ui.progress.get().map(|(l, _)| l);
    let total = move || ui.progress.get().and_then(|(_, t)| t);
    view! {
        <div class="status" data-testid="status" data-state=move || ui.phase.get().as_str() role="status" aria-live="polite">
            {move || ui.message.get()}
        </div>
        <Show when=move || ui.progress.get().is_some()>
            <progress
                data-testid="progress"
                data-of=move || if ui.phase.get() == Phase::Running { "run" } else { "model" }
                data-loaded=move || loaded().unwrap_or(0.0).to_string()
                data-total=move || total().map(|t| t.to_string()).unwrap_or_default()
                max=move || total().unwrap_or(1.0).to_string()
                value=move || total().map(|_| loaded().unwrap_or(0.0).to_string())
            ></progress>
        </Show>
    }
}

/// Integrated gradients' check: the scores should add up to f(x) − f(baseline). It is about the
/// next-token map, so it is hidden while a continuation row is shown.
#[component]
pub fn Completeness(ui: Ui) -> impl IntoView {
    move || {
        if ui.row.get().is_some() {
            return None;
        }
        let output = ui.result.get()?;
        let attribution = &output.attribution;
        let error = attribution.completeness_error?;
        let sum: f64 = attribution.scores.iter().map(|s| *s as f64).sum();
        let change = output.baseline_value.map(|b| attribution.value - b);
        let change_text =
            change.map(|c| format!(", f(x) − f(baseline) = {}", short(c))).unwrap_or_default();
        // The Shapley methods impose Σφ = f(x) − f(baseline): the gap is only rounding.
        let shapley = attribution.evaluations.is_some();
        let (name, miss, verdict) = match (shapley, error <= COMPLETENESS_GOAL) {
            (true, _) => ("Efficiency", "gap", "the method imposes it"),
            (false, true) => ("Completeness", "error", "the path integral is accurate"),
            (false, false) => ("Completeness", "error", "more steps would make the scores add up"),
        };
        let gradients = attribution.path_gradients;
        let gradients_text = gradients
            .map(|g| format!(" with {g} of {} gradients", attribution.params.steps))
            .unwrap_or_default();
        // The budget was spent short of the goal: what more would cost, before spending it.
        let refine = gradients.filter(|&g| error > COMPLETENESS_GOAL && g >= attribution.params.steps).map(|g| {
            let wanted = gradients_for_goal(error, g);
            let pace = ui.timings.get().map(|t| t.attribute_ms / g as f64);
            let cost = pace.map(|ms| format!(" (about {:.0} s more at this run's pace)", (ms * (wanted - g) as f64 / 1000.0).max(1.0))).unwrap_or_default();
            view! {
                <span class="refine">
                    {format!(" About {wanted} gradients in all would bring it under {:.0} %{cost}. ", 100.0 * COMPLETENESS_GOAL)}
                    <button data-testid="refine" data-steps=wanted.to_string()
                        on:click=move |_| ui.change(|s| s.params.steps = wanted, Rerun::Now)>
                        {format!("Refine with {wanted}")}
                    </button>
                </span>
            }
        });
        Some(view! {
            <p class="completeness" class:poor={error > COMPLETENESS_GOAL} data-testid="completeness"
                data-error=error.to_string() data-sum=sum.to_string()
                data-change=change.map(|c| c.to_string()).unwrap_or_default()
                data-gradients=gradients.map(|g| g.to_string()).unwrap_or_default()>
                {format!("{name}: Σ scores = {}{change_text}, {miss} {:.2} %{gradients_text} ({verdict}).", short(sum), 100.0 * error)}
                {refine}
            </p>
        })
    }
}

/// The sampling methods' precision: how many coalitions they evaluated and how large the scores'
/// standard errors are next to the scores (the tooltips give each one's).
#[component]
pub fn Sampling(ui: Ui) -> impl IntoView {
    move || {
        if ui.row.get().is_some() {
            return None;
        }
        let output = ui.result.get()?;
        let a = &output.attribution;
        let errors = a.standard_errors.as_ref()?;
        let mean = errors.iter().map(|e| *e as f64).sum::<f64>() / errors.len().max(1) as f64;
        let largest = errors.iter().fold(0.0f32, |m, e| m.max(*e)) as f64;
        let scale = a.scores.iter().fold(0.0f32, |m, s| m.max(s.abs())) as f64;
        let share = match scale > 0.0 {
            true => format!(" ({:.0} % of the largest |score|)", 100.0 * largest / scale),
            false => String::new(),
        };
        let counted =
            a.evaluations.map(|n| format!("{n} coalitions evaluated; ")).unwrap_or_default();
        let reading = match largest == 0.0 {
            true => "every coalition was evaluated: the scores are exact".to_string(),
            false => format!("standard errors ± {} on average, ± {} at most{share}; a difference smaller than about two of them may be chance", short(mean), short(largest)),
        };
        Some(view! {
            <p class="sampling" data-testid="sampling" data-evaluations=a.evaluations.map(|n| n.to_string()).unwrap_or_default()
                data-mean-error=mean.to_string() data-max-error=largest.to_string()>
                {format!("Sampling: {counted}{reading}.")}
            </p>
        })
    }
}

#[component]
pub fn TimingsPanel(ui: Ui) -> impl IntoView {
    let attr = move |f: fn(&Timings) -> f64| {
        move || ui.timings.get().map(|t| format!("{:.1}", f(&t))).unwrap_or_default()
    };
    view! {
        <div class="timings" data-testid="timings"
            data-load-ms=move || ui.load_ms.get().map(|v| format!("{v:.1}")).unwrap_or_default()
            data-forward-ms=attr(|t| t.forward_ms) data-attribute-ms=attr(|t| t.attribute_ms)
            data-total-ms=attr(|t| t.total_ms) data-wasm-memory=attr(|t| t.wasm_memory)
            data-threads=move || ui.timings.get().map(|t| t.threads.to_string()).unwrap_or_default()
            data-relaxed-simd=move || ui.timings.get().map(|t| t.relaxed_simd.to_string()).unwrap_or_default()
            data-backend=move || ui.timings.get().map(|t| t.backend.name()).unwrap_or_default()
            data-adapter=move || ui.timings.get().and_then(|t| t.adapter).unwrap_or_default()
            data-not-on-gpu=move || ui.timings.get().and_then(|t| t.not_on_gpu).unwrap_or_default()
            data-shader-ms=move || ui.timings.get().and_then(|t| t.shader_ms).map(|v| format!("{v:.1}")).unwrap_or_default()>
            {move || ui.timings.get().map(|t| format!(
                "forward {:.0} ms · attribution {:.0} ms · total {:.0} ms · worker memory {} · {}",
                t.forward_ms, t.attribute_ms, t.total_ms, megabytes(t.wasm_memory), computed_on(&t)))}
        </div>
    }
}

/// "GPU: google swiftshader (kernels compiled in 850 ms before this first run)", "CPU, 2 threads,
/// relaxed SIMD", with why not on the GPU when it was wanted.
fn computed_on(t: &Timings) -> String {
    if let Some(adapter) = &t.adapter {
        let compiled = t
            .shader_ms
            .map(|ms| format!(" (kernels compiled in {ms:.0} ms before this first run)"));
        return format!("GPU: {adapter}{}", compiled.unwrap_or_default());
    }
    let threads = match t.threads {
        1 => "1 thread".to_string(),
        n => format!("{n} threads"),
    };
    let simd = if t.relaxed_simd { ", relaxed SIMD" } else { "" };
    let why = t.not_on_gpu.as_ref().map(|why| format!(" (not on the GPU: {why})"));
    format!("CPU, {threads}{simd}{}", why.unwrap_or_default())
}

#[component]
pub fn ModelLine(ui: Ui) -> impl IntoView {
    view! {
        <p class="model-line">
            {move || ui.model.get().map(|m| format!(
                "Model: {} · {} · {} layers · {} heads · width {} · vocabulary {} · context {} tokens · {}{}",
                m.name, m.config.architecture, m.config.layers, m.config.heads, m.config.width, m.config.vocab,
                m.config.context_length, megabytes(m.bytes as f64),
                m.url.as_deref().and_then(foreign_host).map(|h| format!(" · from {h}")).unwrap_or_default()))}
            " · Everything runs in this tab; nothing is sent anywhere."
        </p>
    }
}

//! "How reliable is each method here?": the ground-truth report card for the loaded model. The
//! person picks methods and samples (with a time estimate at the pace of the last run), runs it
//! like any run (progress, Cancel), reads hit rates with intervals beside chance, and opens any
//! item in the editor to see its map.

use crate::engine::attribution::methods;
use crate::engine::evaluation::suite::{Family, Suite};
use crate::engine::evaluation::{templates, Report, Row};
use crate::state::format::short;
use crate::state::report_card::{estimate_ms, expected_work, open_item, MAX_SAMPLE};
use crate::web::page::files::download_text;
use crate::web::page::ui::{ReportState, Rerun, Ui};
use leptos::prelude::*;
use std::sync::Arc;

fn label(method: &str) -> &str {
    methods::by_name(method).map(|m| m.label()).unwrap_or(method)
}

#[component]
pub fn ReportCard(ui: Ui) -> impl IntoView {
    let suite = Arc::new(templates::builtin());
    let work = {
        let suite = suite.clone();
        Memo::new(move |_| ui.report_plan.with(|plan| expected_work(&suite, plan)))
    };
    let estimate = move || {
        let timings = ui.timings.get()?;
        estimate_ms(work.get(), timings.work, timings.total_ms)
    };
    let estimate_text = move || match estimate() {
        Some(ms) if ms >= 90_000.0 => {
            format!("about {:.0} min at the pace of the last run", ms / 60_000.0)
        }
        Some(ms) => format!("about {:.0} s at the pace of the last run", (ms / 1000.0).max(1.0)),
        None => "an estimate follows the first run".to_string(),
    };
    let can_run =
        move || ui.model.with(Option::is_some) && ui.report_plan.with(|p| !p.methods.is_empty());
    view! {
        <details class="report-card-panel" data-testid="report-panel">
            <summary>"How reliable is each method here?"</summary>
            <p class="muted">"Each method explains texts whose evidence is known by construction (the subject that decides a verb's number, the name mentioned once, a fact's subject, the word an induction copies), on this model. A hit: the token the map ranks first (by |score|) is evidence. Items the model gets wrong are left out. Chance is a random map. Intervals: 95 % bootstrap over items."</p>
            <MethodChoices ui=ui/>
            <p class="muted" data-testid="report-estimate" data-ms=move || estimate().map(|ms| format!("{ms:.0}")).unwrap_or_default()>
                {move || {
                    let items: usize = ui.report_plan.with(|p| p.methods.iter().filter_map(|m| m.per_family).max().unwrap_or(0));
                    format!("Up to {items} items per family, 4 families: {}.", estimate_text())
                }}
            </p>
            <button data-testid="report-run" disabled=move || !can_run() on:click=move |_| ui.evaluate()>"Run the report card"</button>
            {move || match ui.report.get() {
                None => None,
                Some(ReportState::Running) => Some(view! { <p data-testid="report-state" data-state="running">"Running (progress above; Cancel stops it)…"</p> }.into_any()),
                Some(ReportState::Stopped) => Some(view! { <p data-testid="report-state" data-state="stopped">"Stopped."</p> }.into_any()),
                Some(ReportState::Failed(why)) => Some(view! { <p class="error" data-testid="report-state" data-state="error">{why}</p> }.into_any()),
                Some(ReportState::Done { report, ms, backend }) => Some(view! {
                    <p data-testid="report-state" data-state="done" data-ms=ms.to_string()
                        data-checked={report.families.iter().map(|f| f.checked).sum::<usize>().to_string()}>{format!("Computed in {:.0} s on the {}.", ms / 1000.0, backend.name().to_uppercase())}</p>
                    <ReportTable report=(*report).clone()/>
                    <ItemList ui=ui report=(*report).clone() suite=suite.clone()/>
                    <button data-testid="report-export" on:click=move |_| export(ui)>"Download as JSON"</button>
                }.into_any()),
            }}
        </details>
    }
}

/// A checkbox and an items-per-family number for each method.
#[component]
fn MethodChoices(ui: Ui) -> impl IntoView {
    let row = move |method: &'static str| {
        let chosen = move || {
            ui.report_plan
                .with(|p| p.methods.iter().find(|m| m.method == method).and_then(|m| m.per_family))
        };
        let set = move |per_family: Option<usize>| {
            ui.report_plan.update(|plan| {
                plan.methods.retain(|m| m.method != method);
                if let Some(n) = per_family {
                    plan.methods.push(crate::engine::evaluation::MethodPlan {
                        method: method.into(),
                        per_family: Some(n.clamp(1, MAX_SAMPLE)),
                    });
                    // The page's method order.
                    plan.methods.sort_by_key(|m| {
                        methods::METHODS.iter().position(|k| k.name() == m.method)
                    });
                }
            })
        };
        let remembered = StoredValue::new(chosen().unwrap_or(3));
        view! {
            <label class="report-method">
                <input type="checkbox" data-testid="report-method" data-method=method prop:checked=move || chosen().is_some()
                    on:change=move |ev| set(event_target_checked(&ev).then(|| remembered.get_value()))/>
                {label(method)}
                <input type="number" min="1" max=MAX_SAMPLE.to_string() data-testid="report-sample" data-method=method
                    prop:value=move || chosen().unwrap_or(remembered.get_value()).to_string()
                    on:change=move |ev| {
                        if let Ok(n) = event_target_value(&ev).parse::<usize>() {
                            remembered.set_value(n.clamp(1, MAX_SAMPLE));
                            if chosen().is_some() {
                                set(Some(n));
                            }
                        }
                    }/>
                " per family"
            </label>
        }
    };
    view! { <div class="report-methods">{methods::METHODS.iter().map(|m| row(m.name())).collect_view()}</div> }
}

/// One row: hit rate as a bar with its interval, mean rank, evidence mass.
fn table_row(row: &Row, random: bool) -> impl IntoView {
    let s = row.summary;
    let percent = |v: f64| format!("{:.1}%", 100.0 * v.clamp(0.0, 1.0));
    let bar_style = format!("width: {}", percent(s.hit_rate));
    let ci_style = format!("left: {}; width: {}", percent(s.ci[0]), percent(s.ci[1] - s.ci[0]));
    let note = match (random, row.target_independent) {
        (true, _) => " (chance)",
        (false, true) => " (target-independent)",
        _ => "",
    };
    view! {
        <tr data-testid="report-row" class:random=random class:unusable=!row.usable
            data-method=row.method.clone() data-family=row.family.name() data-items=s.items.to_string()
            data-hit-rate=s.hit_rate.to_string() data-ci-low=s.ci[0].to_string() data-ci-high=s.ci[1].to_string()
            data-mean-rank=s.mean_rank.to_string() data-evidence-mass=s.evidence_mass.to_string()
            data-target-independent=row.target_independent.to_string()>
            <td>{format!("{}{note}", if random { "Random map" } else { label(&row.method) })}</td>
            <td>{s.items}</td>
            <td class="hit">
                <span class="bar-track"><span class="bar" style=bar_style></span><span class="ci" style=ci_style></span></span>
                {format!("{:.2} [{:.2}, {:.2}]", s.hit_rate, s.ci[0], s.ci[1])}
            </td>
            <td>{short(s.mean_rank)}</td>
            <td>{format!("{:.2}", s.evidence_mass)}</td>
        </tr>
    }
}

#[component]
fn ReportTable(report: Report) -> impl IntoView {
    let family_block = |family: Family| {
        let status = report.families.iter().find(|f| f.family == family)?.clone();
        let rows: Vec<_> = report
            .methods
            .iter()
            .filter(|r| r.family == family)
            .map(|r| table_row(r, false))
            .collect();
        let random = report
            .random
            .iter()
            .filter(|r| r.family == family)
            .map(|r| table_row(r, true))
            .collect_view();
        let usable = match status.usable {
            true => String::new(),
            false => {
                " Too few items scored to judge methods by: unusable on this model.".to_string()
            }
        };
        Some(view! {
            <tbody data-family=family.name()>
                <tr class="family"><th colspan="5">
                    {format!("{}: {} of {} checked items scored ({} in the suite).{usable}", family.label(), status.scored, status.checked, status.size)}
                </th></tr>
                {rows}
                {random}
            </tbody>
        })
    };
    let skipped = report.skipped.clone();
    let count = skipped.len();
    view! {
        <table class="report-card" data-testid="report-card">
            <thead><tr><th>"Method"</th><th>"Items"</th><th>"Hit rate [95 % CI]"</th><th>"Mean rank"</th><th>"Evidence mass"</th></tr></thead>
            {Family::ALL.map(family_block).into_iter().flatten().collect_view()}
        </table>
        <details data-testid="report-skipped" data-count=count.to_string()>
            <summary>{format!("{count} items left out (most: the model got them wrong)")}</summary>
            <ul>{skipped.into_iter().map(|s| view! { <li>{format!("{}: {}", s.id, s.reason)}</li> }).collect_view()}</ul>
        </details>
    }
}

/// Every scored item, with each method's verdict as a button that opens the item's map.
#[component]
fn ItemList(ui: Ui, report: Report, suite: Arc<Suite>) -> impl IntoView {
    let mut ids: Vec<String> = Vec::new();
    for outcome in &report.items {
        if !ids.contains(&outcome.id) {
            ids.push(outcome.id.clone());
        }
    }
    let row = move |id: String| {
        let item = suite.by_id(&id)?.clone();
        let cells = report
            .items
            .iter()
            .filter(|o| o.id == id)
            .map(|o| {
                let (method, item) = (o.method.clone(), item.clone());
                let open = move |_| {
                    ui.change(|s| *s = open_item(s, &item, &method), Rerun::Now);
                    window().scroll_to_with_x_and_y(0.0, 0.0);
                };
                let verdict = if o.metrics.hit == 1.0 { "✓" } else { "✗" };
                view! {
                    <button data-testid="report-item" data-id=o.id.clone() data-method=o.method.clone()
                        title=format!("{}: evidence ranked {}; open this item's map", label(&o.method), o.metrics.rank)
                        on:click=open>{format!("{verdict} {}", label(&o.method))}</button>
                }
            })
            .collect_view();
        Some(view! { <li><q>{item.text.clone()}</q>{format!(" → {:?} ", item.target)}{cells}</li> })
    };
    view! {
        <details class="report-items">
            <summary>"Open an item in the editor"</summary>
            <ul>{ids.into_iter().filter_map(row).collect_view()}</ul>
        </details>
    }
}

/// The shown report card as JSON: the same fields as `salient evaluate --json`.
fn export(ui: Ui) {
    let Some(ReportState::Done { report, ms, backend }) = ui.report.get_untracked() else {
        return;
    };
    let mut json = serde_json::to_value(&*report).unwrap_or_default();
    json["salient"] = env!("CARGO_PKG_VERSION").into();
    json["model"] = serde_json::to_value(ui.model.get_untracked()).unwrap_or_default();
    json["plan"] = serde_json::to_value(ui.report_plan.get_untracked()).unwrap_or_default();
    json["backend"] = backend.name().into();
    json["ms"] = ms.into();
    let _ = download_text(&json.to_string(), "application/json", "salient-report-card.json");
}

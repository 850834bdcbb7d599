//! Does the map point at what the prediction depends on? The deletion curve (replace the
//! top-scored tokens by the baseline, watch p(target)), comprehensiveness and sufficiency, each
//! against random orders. Measured by the worker after the map is shown.

use crate::engine::attribution::faithfulness::Faithfulness;
use crate::engine::attribution::problem::Baseline;
use crate::engine::model::token_text::visible;
use crate::state::format::short;
use crate::web::page::ui::{Measurement, Ui};
use leptos::prelude::*;

/// Plot size and margins (SVG user units).
const WIDTH: f64 = 280.0;
const HEIGHT: f64 = 170.0;
const LEFT: f64 = 44.0;
const RIGHT: f64 = 10.0;
const TOP: f64 = 10.0;
const BOTTOM: f64 = 36.0;

fn baseline_name(baseline: Baseline) -> &'static str {
    match baseline {
        Baseline::Pad => "the pad token embedding",
        Baseline::Zero => "the zero vector",
    }
}

/// The main map's check, beside it.
#[component]
pub fn FaithfulnessPanel(ui: Ui) -> impl IntoView {
    move || {
        let output = ui.result.get()?;
        let a = &output.attribution;
        let measurement = ui.measurement(&a.method);
        let state = match &measurement {
            None => "off",
            Some(Measurement::Measuring(_)) => "measuring",
            Some(Measurement::Measured { .. }) => "done",
            Some(Measurement::Failed(_)) => "error",
            Some(Measurement::Stopped) => "stopped",
        };
        let report = match &measurement {
            Some(Measurement::Measured { report, .. }) => Some(report.clone()),
            _ => None,
        };
        let number = move |f: fn(&Faithfulness) -> f64| {
            report.as_ref().map(|r| f(r).to_string()).unwrap_or_default()
        };
        let body = match measurement {
            None => view! { <p class="muted">"Not measured: tick “measure faithfulness” to check this map."</p> }.into_any(),
            Some(Measurement::Measuring(percent)) => {
                view! { <p class="muted" data-testid="measuring">{Measurement::measuring_text(percent)}</p> }.into_any()
            }
            Some(Measurement::Stopped) => view! { <p class="muted">"Stopped before it was measured."</p> }.into_any(),
            Some(Measurement::Failed(message)) => view! { <p class="error">{message}</p> }.into_any(),
            Some(Measurement::Measured { report, ms }) => {
                let target = format!("p({:?})", a.target.text);
                view! {
                    {deletion_curve(&report, &target)}
                    {summary_table(&report)}
                    <p class="muted small">{format!(
                        "Tokens replaced by {}, highest score first; the summaries average 10, 20 and 50 % of the tokens; random: three orders from seed {}. {:.0} ms.",
                        baseline_name(a.params.baseline), a.params.seed, ms)}</p>
                }
                .into_any()
            }
        };
        let row_note = ui.row.get().map(|_| view! { <p class="muted small">"For the next-token map (the matrix rows are not measured)."</p> });
        Some(view! {
            <aside class="faithfulness" data-testid="faithfulness" data-state=state
                data-comprehensiveness=number(|r| r.comprehensiveness) data-sufficiency=number(|r| r.sufficiency)
                data-random-comprehensiveness=number(|r| r.random_comprehensiveness)
                data-random-sufficiency=number(|r| r.random_sufficiency)>
                <h3>"Faithfulness " <span class="muted">{format!("of {:?}", visible(&a.target.text))}</span></h3>
                {row_note}
                {body}
            </aside>
        })
    }
}

/// Comprehensiveness and sufficiency beside the same numbers for random orders.
pub fn summary_table(report: &Faithfulness) -> impl IntoView {
    let better = |ours: f64, random: f64, higher: bool| {
        if (ours > random) == higher {
            "better"
        } else {
            "worse"
        }
    };
    view! {
        <table class="faithfulness-numbers">
            <tr><th></th><th>"map"</th><th>"random"</th></tr>
            <tr title="Mean drop of p(target) when the top tokens are replaced: higher is better">
                <td>"comprehensiveness ↑"</td>
                <td class=better(report.comprehensiveness, report.random_comprehensiveness, true)>{short(report.comprehensiveness)}</td>
                <td>{short(report.random_comprehensiveness)}</td>
            </tr>
            <tr title="Mean drop of p(target) when only the top tokens are kept: lower is better">
                <td>"sufficiency ↓"</td>
                <td class=better(report.sufficiency, report.random_sufficiency, false)>{short(report.sufficiency)}</td>
                <td>{short(report.random_sufficiency)}</td>
            </tr>
        </table>
    }
}

/// An axis label: a round number without trailing zeros.
fn tick(x: f64) -> String {
    let text = short(x);
    match text.contains('.') && !text.contains('e') {
        true => text.trim_end_matches('0').trim_end_matches('.').to_string(),
        false => text,
    }
}

/// The smallest of 1, 2, 5 × 10ᵏ at or above `x` (> 0), for a round axis end.
fn round_up(x: f64) -> f64 {
    let unit = 10f64.powf(x.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * unit)
        .find(|v| *v >= x * (1.0 - 1e-9))
        .unwrap_or(10.0 * unit)
}

/// The deletion curve as an inline SVG: x = fraction of top tokens replaced, y = p(target), with
/// a dashed line at the unperturbed probability. (The engine reports random orders as summary
/// numbers only, so there is no random curve to draw.)
pub fn deletion_curve(report: &Faithfulness, target: &str) -> impl IntoView {
    let curve = &report.deletion_curve;
    let top = curve.iter().map(|(_, p)| *p).fold(0.0, f64::max);
    let y_max = if top > 0.0 && top.is_finite() { round_up(top).min(1.0) } else { 1.0 };
    let (plot_w, plot_h) = (WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM);
    let x = move |f: f64| LEFT + f * plot_w;
    let y = move |p: f64| TOP + plot_h * (1.0 - (p / y_max).clamp(0.0, 1.0));
    let points: String = curve
        .iter()
        .map(|(f, p)| format!("{:.1},{:.1}", x(*f as f64), y(*p)))
        .collect::<Vec<_>>()
        .join(" ");
    let start = curve.first().map(|(_, p)| *p).unwrap_or(0.0);
    let x_ticks = [0.0, 0.25, 0.5, 0.75, 1.0];
    let y_ticks = [0.0, y_max / 2.0, y_max];
    view! {
        <svg class="curve" viewBox=format!("0 0 {WIDTH} {HEIGHT}") width=WIDTH.to_string() height=HEIGHT.to_string()
            role="img" aria-label=format!("Deletion curve: {target} as the top tokens are replaced")>
            <g class="grid">
                {y_ticks.map(|t| view! { <line x1=x(0.0) x2=x(1.0) y1=y(t) y2=y(t)></line> }).collect_view()}
            </g>
            <g class="axis">
                <line x1=x(0.0) x2=x(1.0) y1=y(0.0) y2=y(0.0)></line>
                <line x1=x(0.0) x2=x(0.0) y1=y(0.0) y2=y(y_max)></line>
                {x_ticks.map(|t| view! {
                    <line x1=x(t) x2=x(t) y1=y(0.0) y2=y(0.0) + 4.0></line>
                    <text x=x(t) y=y(0.0) + 14.0 text-anchor="middle">{format!("{:.0}%", 100.0 * t)}</text>
                }).collect_view()}
                {y_ticks.map(|t| view! {
                    <line x1=x(0.0) - 4.0 x2=x(0.0) y1=y(t) y2=y(t)></line>
                    <text x=x(0.0) - 6.0 y=y(t) + 3.5 text-anchor="end">{tick(t)}</text>
                }).collect_view()}
                <text x=x(0.5) y=HEIGHT - 4.0 text-anchor="middle">"fraction of top tokens replaced"</text>
                <text x=11.0 y=y(y_max / 2.0) text-anchor="middle" transform=format!("rotate(-90 11 {:.1})", y(y_max / 2.0))>{target.to_string()}</text>
            </g>
            <line class="reference" x1=x(0.0) x2=x(1.0) y1=y(start) y2=y(start)></line>
            <polyline class="deletion" points=points></polyline>
            {curve.iter().map(|(f, p)| view! { <circle cx=x(*f as f64) cy=y(*p) r="2.5"></circle> }).collect_view()}
        </svg>
    }
}

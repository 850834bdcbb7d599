//! Several methods on the same input and target: their maps stacked token-aligned, each with its
//! faithfulness, and how much each pair agrees (Spearman's rank correlation of the scores).

use crate::engine::attribution::methods::METHODS;
use crate::state::format::short;
use crate::state::view::{method_label, TokenMap};
use crate::web::page::ui::{Measurement, Rerun, Ui};
use crate::web::page::view::heatmap::{map_spans, SpanIds};
use leptos::prelude::*;

const COMPARED_MAP: SpanIds = SpanIds { token: "compared-token", group: "compared-group" };

#[component]
pub fn CompareControls(ui: Ui) -> impl IntoView {
    let chosen = ui.setting(|s| s.compare.clone());
    let toggle = move |name: &'static str, on: bool| {
        ui.change(
            move |s| {
                s.compare.retain(|m| m != name);
                if on {
                    s.compare.push(name.to_string());
                }
                // Registry order, whatever order the boxes were ticked in.
                s.compare.sort_by_key(|m| METHODS.iter().position(|r| r.name() == m));
            },
            Rerun::AfterPause,
        )
    };
    view! {
        <div class="compare-methods" data-testid="compare-methods">
            <span class="muted">"Run on the same input and target: "</span>
            {METHODS.iter().map(|m| {
                let name = m.name();
                view! {
                    <label>
                        <input type="checkbox" value=name prop:checked=move || chosen.get().iter().any(|c| c == name)
                            on:change=move |ev| toggle(name, event_target_checked(&ev))/>
                        " " {m.label()}
                    </label>
                }
            }).collect_view()}
        </div>
    }
}

/// One line of numbers for a compared map's faithfulness.
fn faithfulness_line(measurement: Option<Measurement>) -> impl IntoView {
    let (state, text, numbers) = match measurement {
        None => ("off", "faithfulness not measured".to_string(), None),
        Some(Measurement::Measuring(percent)) => {
            ("measuring", Measurement::measuring_text(percent), None)
        }
        Some(Measurement::Stopped) => {
            ("stopped", "faithfulness: stopped before it was measured".to_string(), None)
        }
        Some(Measurement::Failed(message)) => ("error", message, None),
        Some(Measurement::Measured { report, .. }) => (
            "done",
            format!(
                "comprehensiveness {} (random {}) · sufficiency {} (random {})",
                short(report.comprehensiveness),
                short(report.random_comprehensiveness),
                short(report.sufficiency),
                short(report.random_sufficiency)
            ),
            Some((report.comprehensiveness, report.sufficiency)),
        ),
    };
    view! {
        <span class="row-faithfulness muted" data-testid="row-faithfulness" data-state=state
            data-comprehensiveness=numbers.map(|n| n.0.to_string()).unwrap_or_default()
            data-sufficiency=numbers.map(|n| n.1.to_string()).unwrap_or_default()>
            {text}
        </span>
    }
}

#[component]
pub fn ComparePanel(ui: Ui) -> impl IntoView {
    let view_settings = ui.setting(|s| s.view.clone());
    move || {
        let output = ui.result.get()?;
        if output.compared.is_empty() {
            return None;
        }
        let view = view_settings.get();
        let tokens = &output.attribution.tokens;
        let maps = output
            .compared
            .iter()
            .cloned()
            .map(|m| {
                let max = m.scores.iter().fold(0f32, |acc, s| acc.max(s.abs()));
                let map = TokenMap { tokens: tokens.clone(), scores: m.scores, signed: m.signed, errors: None };
                view! {
                    <div class="compare-row" data-testid="compare-map" data-method=m.method.clone()>
                        <div class="compare-label">
                            <strong>{method_label(&m.method).to_string()}</strong>
                            <span class="muted">{format!(" {} · max |score| {} · ", if m.signed { "signed" } else { "unsigned" }, short(max as f64))}</span>
                            {faithfulness_line(ui.measurement(&m.method))}
                        </div>
                        <div class="heatmap compact">{map_spans(&map, &view, COMPARED_MAP)}</div>
                    </div>
                }
            })
            .collect_view();
        let agreements = output
            .agreements
            .iter()
            .map(|g| {
                let text = g.spearman.map(|r| format!("ρ = {r:.2}")).unwrap_or_else(|| "ρ undefined (a constant map)".into());
                view! {
                    <li data-testid="agreement" data-a=g.a.clone() data-b=g.b.clone()
                        data-spearman=g.spearman.map(|r| r.to_string()).unwrap_or_default()>
                        {format!("{} vs {}: ", method_label(&g.a), method_label(&g.b))}<strong>{text}</strong>
                    </li>
                }
            })
            .collect_view();
        Some(view! {
            <div class="compare" data-testid="compare">
                {maps}
                <h3>"Agreement " <span class="muted">"(Spearman’s rank correlation of the token scores)"</span></h3>
                <ul class="agreements">{agreements}</ul>
            </div>
        })
    }
}

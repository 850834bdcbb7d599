//! The page's report card: which methods to evaluate on how many items, what that will cost
//! before it starts, and the settings that open one item in the editor.

use crate::engine::attribution::methods::{self, MethodParams};
use crate::engine::attribution::problem::{BackendKind, TargetChoice};
use crate::engine::evaluation::metrics::{ItemMetrics, Summary};
use crate::engine::evaluation::suite::{Family, Item, Suite, MAX_ITEMS};
use crate::engine::evaluation::{self, target_spec, MethodPlan, Plan, Report, Row};
use crate::engine::runtime::progress;
use crate::state::settings::Settings;
use serde::{Deserialize, Serialize};

/// Items per family by default: enough for a first look in a minute or two of the page's CPU.
pub const CHEAP_SAMPLE: usize = 12;
/// For methods that take many passes per item (integrated gradients, SmoothGrad, occlusion).
pub const EXPENSIVE_SAMPLE: usize = 3;
/// The most the page asks per family (the built-in suite's size).
pub const MAX_SAMPLE: usize = 120;

/// Whether `method` costs more than a few backward passes per item.
fn expensive(method: &str, params: &MethodParams) -> bool {
    let seq = 20;
    methods::by_name(method).is_ok_and(|m| m.work(seq, params) > 4 * progress::backward(1, seq))
}

/// The page's default plan: every method, the expensive ones on fewer items.
pub fn default_plan() -> Plan {
    let params = MethodParams::default();
    let methods = methods::METHODS
        .iter()
        .map(|m| MethodPlan {
            method: m.name().to_string(),
            per_family: Some(if expensive(m.name(), &params) {
                EXPENSIVE_SAMPLE
            } else {
                CHEAP_SAMPLE
            }),
        })
        .collect();
    Plan { methods, params, seed: 0 }
}

/// About how many tokens a text of the built-in suite takes: its words and punctuation, and a
/// BOS (its templates use common words, most one token each).
pub fn approximate_tokens(text: &str) -> usize {
    let words = text.split_whitespace().count();
    let marks = text.chars().filter(|c| c.is_ascii_punctuation()).count();
    words + marks + 1
}

/// The work `plan` expects on `suite` (progress units, item lengths approximated).
pub fn expected_work(suite: &Suite, plan: &Plan) -> u64 {
    evaluation::expected_work(suite, plan, |item| approximate_tokens(&item.text)).unwrap_or(0)
}

/// The estimated time of `work` at the pace of a run that did `run_work` units in `run_ms`.
pub fn estimate_ms(work: u64, run_work: u64, run_ms: f64) -> Option<f64> {
    (run_work > 0 && run_ms > 0.0).then(|| work as f64 * run_ms / run_work as f64)
}

/// `settings` with `item`'s text and question, explained by `method`: one item opened in the
/// editor.
pub fn open_item(settings: &Settings, item: &Item, method: &str) -> Settings {
    let spec = target_spec(item);
    Settings {
        text: item.text.clone(),
        target: spec.token,
        kind: spec.kind,
        foil: spec.foil,
        method: method.to_string(),
        continuation: String::new(),
        ..settings.clone()
    }
    .checked()
    .0
}

/// The target's text as the report shows it.
pub fn choice_text(choice: &TargetChoice) -> String {
    match choice {
        TargetChoice::Text(text) => text.clone(),
        TargetChoice::Id(id) => format!("#{id}"),
        TargetChoice::TopPrediction => "the top prediction".into(),
    }
}

/// A computed report card as links, the saved state and embeds carry it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SharedReport {
    pub report: Report,
    pub ms: f64,
    pub backend: BackendKind,
}

/// Longest reason kept for a skipped item; longer ones are cut.
const MAX_REASON_CHARS: usize = 300;

impl SharedReport {
    /// The report as a view may show it, or why not: a report from outside (a link, the saved
    /// state) may hold anything. Rows of known methods and families, counts within the suite's
    /// bounds, rates and shares in [0, 1] with ordered intervals, ranks at least 1, every
    /// number finite.
    pub fn checked(mut self) -> Result<Self, String> {
        let Report { methods, random, families, skipped, items } = &mut self.report;
        let rows = methods::METHODS.len() * Family::ALL.len();
        let bounded = |what: &str, n: usize, max: usize| match n <= max {
            true => Ok(()),
            false => Err(format!("it has {n} {what} (at most {max})")),
        };
        bounded("method rows", methods.len(), rows)?;
        bounded("random rows", random.len(), Family::ALL.len())?;
        bounded("families", families.len(), Family::ALL.len())?;
        bounded("skipped items", skipped.len(), MAX_ITEMS)?;
        bounded("item results", items.len(), methods::METHODS.len() * MAX_ITEMS)?;
        for row in methods.iter() {
            known_method(&row.method)?;
        }
        for row in methods.iter().chain(random.iter()) {
            check_summary(row)?;
        }
        for family in families.iter() {
            let ordered = family.scored <= family.checked && family.checked <= family.size;
            if !ordered || family.size > MAX_ITEMS {
                return Err(format!("the counts of {} do not add up", family.family.name()));
            }
        }
        for item in items.iter() {
            known_method(&item.method)?;
            check_item(&item.metrics)?;
        }
        for s in skipped.iter_mut() {
            s.id = s.id.chars().take(MAX_REASON_CHARS).collect();
            s.reason = s.reason.chars().take(MAX_REASON_CHARS).collect();
        }
        if !(self.ms.is_finite() && self.ms >= 0.0) {
            return Err("its time is not a duration".into());
        }
        Ok(self)
    }
}

fn known_method(name: &str) -> Result<(), String> {
    match methods::by_name(name) {
        Ok(_) => Ok(()),
        Err(_) => Err(format!(
            "it names an unknown method ({:?})",
            name.chars().take(40).collect::<String>()
        )),
    }
}

fn unit(value: f64) -> bool {
    value.is_finite() && (0.0..=1.0).contains(&value)
}

fn check_summary(row: &Row) -> Result<(), String> {
    let Summary { items, hit_rate, mean_rank, evidence_mass, ci, evidence_mass_ci } = row.summary;
    let interval = |[lo, hi]: [f64; 2]| unit(lo) && unit(hi) && lo <= hi;
    let fine = items <= MAX_ITEMS
        && unit(hit_rate)
        && unit(evidence_mass)
        && interval(ci)
        && interval(evidence_mass_ci)
        && mean_rank.is_finite()
        && (items == 0 || (1.0..=MAX_ITEMS as f64).contains(&mean_rank));
    match fine {
        true => Ok(()),
        false => Err(format!("its {} row of {} is out of range", row.method, row.family.name())),
    }
}

fn check_item(m: &ItemMetrics) -> Result<(), String> {
    match unit(m.hit) && unit(m.mass) && m.rank.is_finite() && m.rank >= 1.0 {
        true => Ok(()),
        false => Err("an item's result is out of range".into()),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::engine::evaluation::templates;

    #[test]
    fn expensive_methods_take_fewer_items_and_the_estimate_scales() {
        let plan = default_plan();
        let sample = |name: &str| {
            plan.methods.iter().find(|m| m.method == name).and_then(|m| m.per_family).unwrap()
        };
        assert_eq!(sample("saliency"), CHEAP_SAMPLE);
        assert_eq!(sample("attention"), CHEAP_SAMPLE);
        assert_eq!(sample("integrated_gradients"), EXPENSIVE_SAMPLE);
        assert_eq!(sample("occlusion"), EXPENSIVE_SAMPLE);
        let suite = templates::builtin();
        let all = expected_work(&suite, &plan);
        let one = Plan { methods: plan.methods[..1].to_vec(), ..plan.clone() };
        assert!(expected_work(&suite, &one) < all);
        assert_eq!(estimate_ms(all, all / 2, 100.0), Some(200.0));
        assert_eq!(estimate_ms(all, 0, 100.0), None);
    }

    pub(crate) fn a_report() -> SharedReport {
        let row = |method: &str| Row {
            method: method.into(),
            family: Family::Factual,
            summary: Summary {
                items: 2,
                hit_rate: 0.5,
                mean_rank: 1.5,
                evidence_mass: 0.3,
                ci: [0.0, 1.0],
                evidence_mass_ci: [0.2, 0.4],
            },
            target_independent: false,
            usable: true,
        };
        let report = Report {
            methods: vec![row("saliency")],
            random: vec![row("random")],
            families: vec![evaluation::FamilyStatus {
                family: Family::Factual,
                size: 120,
                checked: 2,
                scored: 2,
                usable: true,
            }],
            skipped: vec![evaluation::Skipped {
                id: "x".into(),
                family: Family::Factual,
                reason: "é".repeat(5000),
            }],
            items: vec![evaluation::ItemOutcome {
                id: "factual-001".into(),
                family: Family::Factual,
                method: "saliency".into(),
                metrics: ItemMetrics { hit: 1.0, rank: 1.0, mass: 0.4 },
            }],
        };
        SharedReport { report, ms: 1000.0, backend: BackendKind::Cpu }
    }

    #[test]
    fn a_report_from_outside_is_checked() {
        let good = a_report().checked().unwrap();
        assert_eq!(good.report.skipped[0].reason.chars().count(), MAX_REASON_CHARS);
        let bad: Vec<fn(&mut SharedReport)> = vec![
            |r| r.report.methods[0].method = "evil".into(),
            |r| r.report.methods[0].summary.hit_rate = f64::NAN,
            |r| r.report.methods[0].summary.hit_rate = 1.5,
            |r| r.report.random[0].summary.ci = [0.9, 0.1],
            |r| r.report.methods[0].summary.mean_rank = 0.0,
            |r| r.report.methods[0].summary.evidence_mass_ci = [-1.0, 0.5],
            |r| r.report.families[0].scored = 3,
            |r| r.report.items[0].metrics.mass = f64::INFINITY,
            |r| r.report.items[0].method = "nope".into(),
            |r| r.report.methods = vec![r.report.methods[0].clone(); 100],
            |r| r.ms = -1.0,
        ];
        for (k, spoil) in bad.into_iter().enumerate() {
            let mut report = a_report();
            spoil(&mut report);
            assert!(report.checked().is_err(), "case {k}");
        }
    }

    #[test]
    fn an_item_opens_with_its_question() {
        let suite = templates::builtin();
        let item = suite.items.iter().find(|i| i.foil.is_some()).unwrap();
        let opened = open_item(&Settings::default(), item, "integrated_gradients");
        assert_eq!(opened.text, item.text);
        assert_eq!(opened.request().target, target_spec(item));
        assert_eq!(opened.method, "integrated_gradients");
    }
}

//! The page's report card: which methods to evaluate on how many items, what that will cost
//! before it starts, and the settings that open one item in the editor.

use crate::engine::attribution::methods::{self, MethodParams};
use crate::engine::attribution::problem::TargetChoice;
use crate::engine::evaluation::suite::{Item, Suite};
use crate::engine::evaluation::{self, target_spec, MethodPlan, Plan};
use crate::engine::runtime::progress;
use crate::state::settings::Settings;

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

#[cfg(test)]
mod tests {
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

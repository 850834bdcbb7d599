//! Ground truth: how often each method finds evidence that is known to be there, on the loaded
//! model. A suite's items (`suite`, built in: `templates`) each say where the evidence for their
//! next token is; the items the model gets wrong are left out (an explanation of a wrong
//! prediction has no known evidence); each method's map of the others is judged by `metrics`
//! beside a random map's.

pub mod metrics;
pub mod suite;
pub mod templates;

use crate::engine::api::explain;
use crate::engine::attribution::methods::{self, MethodParams};
use crate::engine::attribution::objective::TargetKind;
use crate::engine::attribution::problem::{
    top_indices, Backend, Problem, TargetChoice, TargetSpec,
};
use crate::engine::error::{EngineError, Result};
use crate::engine::model::Model;
use crate::engine::runtime::context::RunContext;
use crate::engine::runtime::progress;
use crate::engine::runtime::random::SplitMix64;
use metrics::{item_metrics, random_metrics, summarise, ItemMetrics, Summary};
use serde::{Deserialize, Serialize};
use suite::{ranked_positions, Family, Item, Suite};

/// A family with fewer scored items than this (counted over the whole family: a sample's share,
/// scaled) says too little about a method on this model: it is reported as unusable.
pub const MIN_SCORED: usize = 30;

/// What to evaluate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub methods: Vec<MethodPlan>,
    /// The methods' settings.
    #[serde(default)]
    pub params: MethodParams,
    /// Orders each family's items for sampling, and seeds the baseline and the intervals.
    #[serde(default)]
    pub seed: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MethodPlan {
    pub method: String,
    /// Items per family (the first of the family's seeded order); `None`: all of them.
    pub per_family: Option<usize>,
}

impl MethodPlan {
    /// Whether the method's sample holds the `k`-th item of a family's order.
    fn samples(&self, k: usize) -> bool {
        self.per_family.is_none_or(|n| k < n)
    }
}

/// A method's (or the random baseline's) summary on one family.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Row {
    pub method: String,
    pub family: Family,
    #[serde(flatten)]
    pub summary: Summary,
    /// Its scores do not depend on the target: the same map whatever the evidence decides.
    pub target_independent: bool,
    /// The family has enough scored items on this model ([`MIN_SCORED`]).
    pub usable: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FamilyStatus {
    pub family: Family,
    /// Items of the family in the suite.
    pub size: usize,
    /// Items the model was asked (the largest sample of any method).
    pub checked: usize,
    /// Of those, the ones it got right.
    pub scored: usize,
    pub usable: bool,
}

/// An item left out of the scores, and why (most often: the model got it wrong).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Skipped {
    pub id: String,
    pub family: Family,
    pub reason: String,
}

/// One method's map on one scored item.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ItemOutcome {
    pub id: String,
    pub family: Family,
    pub method: String,
    #[serde(flatten)]
    pub metrics: ItemMetrics,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Per method and family, in the plan's order.
    pub methods: Vec<Row>,
    /// The random baseline per family, over the family's scored items.
    pub random: Vec<Row>,
    pub families: Vec<FamilyStatus>,
    pub skipped: Vec<Skipped>,
    pub items: Vec<ItemOutcome>,
}

/// The explained quantity of an item: the logit difference where it has a foil, else the
/// target's log-probability.
pub fn target_spec(item: &Item) -> TargetSpec {
    let text = |t: &String| TargetChoice::Text(t.clone());
    TargetSpec {
        token: text(&item.target),
        kind: if item.foil.is_some() { TargetKind::Logit } else { TargetKind::LogProb },
        foil: item.foil.as_ref().map(text),
    }
}

/// Each family's items in the plan's order: the samples are their first ones.
fn sampled<'s>(suite: &'s Suite, plan: &Plan) -> Vec<(Family, Vec<&'s Item>)> {
    let largest = plan.methods.iter().map(|m| m.per_family.unwrap_or(usize::MAX)).max();
    Family::ALL
        .iter()
        .enumerate()
        .filter_map(|(k, &family)| {
            let items: Vec<&Item> = suite.family(family).collect();
            if items.is_empty() {
                return None;
            }
            let order = SplitMix64::new(plan.seed ^ k as u64).permutation(items.len());
            let take = largest.unwrap_or(0).min(items.len());
            Some((family, order[..take].iter().map(|&i| items[i]).collect()))
        })
        .collect()
}

/// The work [`evaluate`] expects, in progress units; `lengths` gives an item's token count.
pub fn expected_work(
    suite: &Suite,
    plan: &Plan,
    mut lengths: impl FnMut(&Item) -> usize,
) -> Result<u64> {
    let mut work = 0;
    for (_, items) in sampled(suite, plan) {
        for (k, item) in items.into_iter().enumerate() {
            let seq = lengths(item);
            work += progress::forward(1, seq);
            for m in plan.methods.iter().filter(|m| m.samples(k)) {
                work += methods::by_name(&m.method)?.work(seq, &plan.params);
            }
        }
    }
    Ok(work)
}

/// Runs `plan` over `suite` on `model`, in `context` (its progress counts the whole evaluation;
/// its stop token stops it).
pub async fn evaluate(
    backend: Backend,
    model: &Model,
    suite: &Suite,
    plan: &Plan,
    context: &RunContext,
) -> Result<Report> {
    if plan.methods.is_empty() {
        return Err(EngineError::InvalidRequest("Choose at least one method to evaluate.".into()));
    }
    let methods: Vec<_> =
        plan.methods.iter().map(|m| methods::by_name(&m.method)).collect::<Result<_>>()?;
    let lengths = |item: &Item| model.tokenizer.tokenize(&item.text).map_or(0, |t| t.len());
    context.progress.begin(expected_work(suite, plan, lengths)?);
    let mut report = Report {
        methods: Vec::new(),
        random: Vec::new(),
        families: Vec::new(),
        skipped: Vec::new(),
        items: Vec::new(),
    };
    let mut random = SplitMix64::new(plan.seed);
    for (family, items) in sampled(suite, plan) {
        let mut per_method: Vec<Vec<ItemMetrics>> = vec![Vec::new(); methods.len()];
        let mut baseline = Vec::new();
        for (k, item) in items.iter().enumerate() {
            let skip = |reason: String| Skipped { id: item.id.clone(), family, reason };
            let scored = match scored_item(&backend, model, item, context).await? {
                Ok(scored) => scored,
                Err(reason) => {
                    report.skipped.push(skip(reason));
                    continue;
                }
            };
            let (problem, evidence, ranked) = &scored;
            baseline.push(random_metrics(problem.len(), evidence, ranked, &mut random));
            for (m, method) in plan.methods.iter().enumerate() {
                if method.samples(k) {
                    let attribution = explain(problem, &method.method, &plan.params, 0).await?;
                    let metrics = item_metrics(&attribution.scores, evidence, ranked);
                    per_method[m].push(metrics);
                    report.items.push(ItemOutcome {
                        id: item.id.clone(),
                        family,
                        method: method.method.clone(),
                        metrics,
                    });
                }
            }
        }
        let size = suite.family(family).count();
        let status = FamilyStatus {
            family,
            size,
            checked: items.len(),
            scored: baseline.len(),
            usable: usable(baseline.len(), items.len(), size),
        };
        let row = |method: &str, target_independent, rows: &[ItemMetrics]| Row {
            method: method.to_string(),
            family,
            summary: summarise(rows, plan.seed),
            target_independent,
            usable: status.usable,
        };
        for (m, method) in methods.iter().enumerate() {
            let independent = method.info().target_independent;
            report.methods.push(row(method.name(), independent, &per_method[m]));
        }
        report.random.push(row("random", false, &baseline));
        report.families.push(status);
    }
    Ok(report)
}

/// Whether `scored` of `checked` items (of a family of `size`) are enough to judge methods by:
/// [`MIN_SCORED`] scored, or for a sample smaller than that, as many expected over the family.
fn usable(scored: usize, checked: usize, size: usize) -> bool {
    scored >= MIN_SCORED
        || (checked < MIN_SCORED.min(size)
            && checked > 0
            && scored as f64 / checked as f64 * size as f64 >= MIN_SCORED as f64)
}

type ScoredItem<'m> = (Problem<'m>, Vec<usize>, Vec<usize>);

/// `item`'s problem, evidence tokens and ranked positions; or why it is left out (its evidence
/// does not fall on this tokenizer's tokens, its answer is not one token, the model gets it
/// wrong). Stops and backend failures are errors.
async fn scored_item<'m>(
    backend: &Backend,
    model: &'m Model,
    item: &Item,
    context: &RunContext,
) -> Result<std::result::Result<ScoredItem<'m>, String>> {
    let tokens = match model.tokenize_input(&item.text, None) {
        Ok(tokens) => tokens,
        Err(e) => return Ok(Err(e.to_string())),
    };
    let evidence = match item.evidence_tokens(&tokens) {
        Ok(evidence) => evidence,
        Err(why) => return Ok(Err(why)),
    };
    let ranked = ranked_positions(&tokens);
    if evidence.is_empty() || evidence.len() == ranked.len() {
        return Ok(Err("the evidence is every token or none".into()));
    }
    let problem =
        match Problem::on(backend.clone(), model, tokens, &target_spec(item), context).await {
            Ok(problem) => problem,
            Err(e @ (EngineError::Stopped | EngineError::Gpu(_) | EngineError::Internal(_))) => {
                return Err(e)
            }
            Err(e) => return Ok(Err(e.to_string())),
        };
    let objective = problem.objective;
    let prob = |id: u32| problem.probs[id as usize];
    let top = top_indices(&problem.probs, 1)[0];
    let wrong = match objective.foil {
        Some(foil) => (prob(objective.target) <= prob(foil)).then(|| {
            let foil = item.foil.as_deref().unwrap_or_default();
            format!("the model puts {:?} below the foil {foil:?}", item.target)
        }),
        None => (top != objective.target).then(|| {
            let said = model.tokenizer.token(top).map(|t| t.text).unwrap_or_default();
            format!("the model predicts {said:?}, not {:?}", item.target)
        }),
    };
    Ok(match wrong {
        Some(why) => Err(why),
        None => Ok((problem, evidence, ranked)),
    })
}

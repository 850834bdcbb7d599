//! Attribution methods, one file each, behind one small trait, listed in one registry. What the
//! page and the CLI show of a method (its name, label, sign and settings) is data, a
//! [`MethodInfo`] per file; `attribute` is its computation, a future: the passes it asks of the
//! problem may wait for a backend.

mod attention;
mod coalitions;
mod grad_x_input;
mod integrated_gradients;
mod kernel_shap;
mod lime;
mod occlusion;
mod rollout;
mod saliency;
mod shapley_sampling;
mod smoothgrad;

pub use coalitions::MAX_BUDGET;
pub use integrated_gradients::{
    gradients_for_goal, Path, PathNode, AIM_GRADIENTS, COMPLETENESS_GOAL, DEFAULT_STEPS, MAX_STEPS,
    MIN_STEPS,
};
pub use smoothgrad::MAX_SAMPLES;

use crate::engine::attribution::grouping::Granularity;
use crate::engine::attribution::problem::{Baseline, Problem};
use crate::engine::cpu::memory::gradient_batch_rows;
use crate::engine::error::{EngineError, Result};
use crate::engine::model::arch::DecoderConfig;
use crate::engine::runtime::context::GraphBudget;
use crate::engine::runtime::progress;
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::pin::Pin;

/// What the page and the CLI show of a method.
#[derive(Debug)]
pub struct MethodInfo {
    /// The name used in the page's select, the CLI's `--method` and exports.
    pub name: &'static str,
    /// A human label for the page.
    pub label: &'static str,
    /// Signed scores get a diverging colour scale, unsigned ones a sequential scale.
    pub signed: bool,
    /// Its scores do not depend on the explained token (attention, rollout): the same map for
    /// every target.
    pub target_independent: bool,
    /// The settings in [`MethodParams`] this method reads (the page shows only these).
    pub params: &'static [Param],
}

/// A method's computation, which may wait for the backend's passes.
pub type ScoresFuture<'a> = Pin<Box<dyn Future<Output = Result<Scores>> + 'a>>;

pub trait AttributionMethod: Sync {
    fn info(&self) -> &'static MethodInfo;
    fn name(&self) -> &'static str {
        self.info().name
    }
    fn label(&self) -> &'static str {
        self.info().label
    }
    fn signed(&self) -> bool {
        self.info().signed
    }
    fn params(&self) -> &'static [Param] {
        self.info().params
    }
    /// How many inputs besides the text the method takes gradients at through
    /// [`Problem::gradients`] (path points, noisy copies). Each batch of them keeps its own forward
    /// graph next to the text's, which the page's memory estimate counts (`attribution::memory`).
    fn gradient_inputs(&self, _params: &MethodParams) -> usize {
        0
    }
    /// How many inputs of `seq` tokens it takes gradients at in one batch besides the text (0 for
    /// methods that need only the text's own backward pass): its gradient inputs, at most a batch
    /// that fits `budget`.
    fn batch_rows(
        &self,
        params: &MethodParams,
        config: &DecoderConfig,
        seq: usize,
        budget: GraphBudget,
    ) -> usize {
        self.gradient_inputs(params).min(gradient_batch_rows(config, seq, budget))
    }
    /// The work [`Self::attribute`] does on a fresh problem of `seq` tokens, in
    /// [`progress`](crate::engine::runtime::progress) units (at most that, for a method that may stop
    /// early). By default: the input gradient, whose forward pass the problem kept.
    fn work(&self, seq: usize, _params: &MethodParams) -> u64 {
        progress::backward(1, seq)
    }
    /// One score per input token.
    fn attribute<'a>(
        &'a self,
        problem: &'a Problem<'_>,
        params: &'a MethodParams,
    ) -> ScoresFuture<'a>;
}

/// A method's result: one score per input token, and for path and Shapley methods how far the
/// scores are from adding up to the change in the explained quantity.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    pub values: Vec<f32>,
    /// |Σ scores − (f(x) − f(baseline))| / |f(x) − f(baseline)|: integrated gradients'
    /// completeness error, the Shapley methods' efficiency gap.
    pub completeness_error: Option<f64>,
    /// Path methods: how many gradients the path integral took (at most the steps asked for).
    pub gradients: Option<usize>,
    /// Sampling methods: each score's standard error (0 where nothing was left to chance).
    pub standard_errors: Option<Vec<f32>>,
    /// Perturbation methods: how many coalitions they evaluated (forward passes).
    pub evaluations: Option<usize>,
}

impl From<Vec<f32>> for Scores {
    fn from(values: Vec<f32>) -> Self {
        Self { values, ..Self::default() }
    }
}

/// One setting of [`MethodParams`], to say which ones a method reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Param {
    Steps,
    Baseline,
    Samples,
    Sigma,
    Seed,
    Layer,
    Head,
    Features,
    Budget,
}

impl Param {
    /// The field's name in [`MethodParams`] (and the CLI's flag without `--`).
    pub fn name(self) -> &'static str {
        match self {
            Param::Steps => "steps",
            Param::Baseline => "baseline",
            Param::Samples => "samples",
            Param::Sigma => "sigma",
            Param::Seed => "seed",
            Param::Layer => "layer",
            Param::Head => "head",
            Param::Features => "features",
            Param::Budget => "budget",
        }
    }
}

/// Every method's settings in one place, so a request, a share link and an export carry them
/// the same way; each method reads the ones it uses.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MethodParams {
    /// Integrated gradients: the most gradients its path integral may take.
    pub steps: usize,
    pub baseline: Baseline,
    /// SmoothGrad: noisy copies.
    pub samples: usize,
    /// SmoothGrad: noise standard deviation, as a fraction of the input embeddings' RMS.
    pub sigma: f32,
    /// SmoothGrad's noise, the perturbation methods' draws and the faithfulness check's orders.
    pub seed: u64,
    /// Attention: the layer to read (`None`: the mean over layers).
    pub layer: Option<usize>,
    /// Attention: the head to read (`None`: the mean over heads).
    pub head: Option<usize>,
    /// Perturbation methods: what a player of the game is (the view's grouping stays apart).
    pub features: Granularity,
    /// Perturbation methods: the most coalitions evaluated (forward passes).
    pub budget: usize,
}

impl Default for MethodParams {
    fn default() -> Self {
        Self {
            steps: DEFAULT_STEPS,
            baseline: Baseline::Pad,
            samples: 16,
            sigma: 0.1,
            seed: 0,
            layer: None,
            head: None,
            features: Granularity::Token,
            budget: 512,
        }
    }
}

/// Every method, in the order the page lists them.
pub const METHODS: &[&dyn AttributionMethod] = &[
    &saliency::Saliency,
    &grad_x_input::GradXInput,
    &integrated_gradients::IntegratedGradients,
    &smoothgrad::SmoothGrad,
    &occlusion::Occlusion,
    &kernel_shap::KERNEL_SHAP,
    &lime::LIME,
    &shapley_sampling::SHAPLEY_SAMPLING,
    &attention::Attention,
    &rollout::Rollout,
];

pub fn by_name(name: &str) -> Result<&'static dyn AttributionMethod> {
    METHODS.iter().copied().find(|m| m.name() == name).ok_or_else(|| EngineError::UnknownMethod {
        found: name.to_string(),
        known: METHODS.iter().map(|m| m.name()).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::attribution::memory::max_tokens_within;
    use crate::engine::attribution::memory::tests::{smollm2, PAGE, SMOLLM2_FILE};

    #[test]
    fn batch_rows_follow_the_method() {
        let (params, config) = (MethodParams::default(), smollm2());
        let by_name = |name| super::by_name(name).unwrap();
        assert_eq!(by_name("saliency").batch_rows(&params, &config, 64, PAGE), 0);
        assert_eq!(by_name("occlusion").batch_rows(&params, &config, 64, PAGE), 0);
        let ig_rows = by_name("integrated_gradients").batch_rows(&params, &config, 64, PAGE);
        assert_eq!(ig_rows, gradient_batch_rows(&config, 64, PAGE));
        assert!((1..=4).contains(&ig_rows), "{ig_rows}");
        // Never more rows than the method has inputs: 4 steps fill a batch of 4.
        let few_steps = MethodParams { steps: 4, ..params.clone() };
        assert_eq!(by_name("integrated_gradients").batch_rows(&few_steps, &config, 10, PAGE), 4);
        assert_eq!(by_name("smoothgrad").batch_rows(&params, &config, 512, PAGE), 1);
    }

    #[test]
    fn every_method_fits_512_tokens_in_a_gib() {
        // The page's memory goal for the default model, by the estimate (BENCHMARKS.md measures it).
        let (config, file) = (smollm2(), SMOLLM2_FILE);
        for method in METHODS {
            let params = MethodParams::default();
            let fits = max_tokens_within(&config, file, 1 << 30, 512, PAGE, |n| {
                method.batch_rows(&params, &config, n, PAGE)
            });
            assert_eq!(fits, 512, "{}", method.name());
        }
    }
}

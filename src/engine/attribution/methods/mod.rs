//! Attribution methods, one file each, behind one small trait, listed in one registry.

mod attention;
mod grad_x_input;
mod integrated_gradients;
mod occlusion;
mod rollout;
mod saliency;
mod smoothgrad;

pub use integrated_gradients::{Path, PathNode, MAX_STEPS, MIN_STEPS};
pub use smoothgrad::MAX_SAMPLES;

use crate::engine::attribution::problem::Problem;
use crate::engine::error::{EngineError, Result};
use crate::engine::runtime::progress;
use serde::{Deserialize, Serialize};

pub trait AttributionMethod: Sync {
    /// The name used in the page's select, the CLI's `--method` and exports.
    fn name(&self) -> &'static str;
    /// A human label for the page.
    fn label(&self) -> &'static str;
    /// Signed scores get a diverging colour scale, unsigned ones a sequential scale.
    fn signed(&self) -> bool;
    /// The settings in [`MethodParams`] this method reads (the page shows only these).
    fn params(&self) -> &'static [Param] {
        &[]
    }
    /// How many inputs besides the text the method takes gradients at through
    /// [`Problem::gradients`] (path points, noisy copies). Each batch of them keeps its own forward
    /// graph next to the text's, which the page's memory estimate counts (`engine::memory`).
    fn gradient_inputs(&self, _params: &MethodParams) -> usize {
        0
    }
    /// The work [`Self::attribute`] does on a fresh problem of `seq` tokens, in
    /// [`progress`](crate::engine::runtime::progress) units (at most that, for a method that may stop
    /// early). By default: the input gradient, whose forward pass the problem kept.
    fn work(&self, seq: usize, _params: &MethodParams) -> u64 {
        progress::backward(1, seq)
    }
    /// One score per input token.
    fn attribute(&self, problem: &Problem, params: &MethodParams) -> Result<Scores>;
}

/// A method's result: one score per input token, and for path methods how far the scores are
/// from adding up to the change in the explained quantity.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    pub values: Vec<f32>,
    /// |Σ scores − (f(x) − f(baseline))| / |f(x) − f(baseline)| (integrated gradients).
    pub completeness_error: Option<f64>,
    /// Path methods: how many gradients the path integral took (at most the steps asked for).
    pub gradients: Option<usize>,
}

impl From<Vec<f32>> for Scores {
    fn from(values: Vec<f32>) -> Self {
        Self { values, completeness_error: None, gradients: None }
    }
}

/// What replaces a token's embedding where a method needs "no information" (integrated
/// gradients' path start, occlusion, the deletion curve).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Baseline {
    /// The embedding of the model's padding token (or end-of-text when it has none): a real
    /// input the model has seen, so the path from it stays on the model's usual scale.
    #[default]
    Pad,
    /// The zero vector. Near it f is steep (RMSNorm of a small x is about x / √eps), which the
    /// adaptive path rule of integrated gradients resolves by splitting its intervals there.
    Zero,
}

impl Baseline {
    pub const ALL: [Baseline; 2] = [Baseline::Pad, Baseline::Zero];

    pub fn name(self) -> &'static str {
        match self {
            Baseline::Pad => "pad",
            Baseline::Zero => "zero",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|b| b.name() == name)
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
    /// SmoothGrad and the random orders of the faithfulness check.
    pub seed: u64,
    /// Attention: the layer to read (`None`: the mean over layers).
    pub layer: Option<usize>,
    /// Attention: the head to read (`None`: the mean over heads).
    pub head: Option<usize>,
}

impl Default for MethodParams {
    fn default() -> Self {
        Self {
            steps: 32,
            baseline: Baseline::Pad,
            samples: 16,
            sigma: 0.1,
            seed: 0,
            layer: None,
            head: None,
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
    &attention::Attention,
    &rollout::Rollout,
];

pub fn by_name(name: &str) -> Result<&'static dyn AttributionMethod> {
    METHODS.iter().copied().find(|m| m.name() == name).ok_or_else(|| EngineError::UnknownMethod {
        found: name.to_string(),
        known: METHODS.iter().map(|m| m.name()).collect(),
    })
}

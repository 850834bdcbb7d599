//! Every choice the user makes on the page, in one serialisable value. A run is always built from
//! it by [`Settings::request`], so a share link or a saved state that restores `Settings`
//! restores the same computation and the same view.

use crate::engine::grouping::Granularity;
use crate::engine::methods::{self, MethodParams, Param, METHODS};
use crate::engine::{Request, TargetChoice, TargetKind, TargetSpec};
use serde::{Deserialize, Serialize};

const EXAMPLE_TEXT: &str = "The Eiffel Tower is located in the city of";
const TOP_K: usize = 5;
/// Longest text the page attributes. Memory stays bounded (the graph budget in
/// `engine::memory`: 0.36 GB of wasm memory at 64 tokens, 0.69 GB at 491, measured), but time
/// grows faster than length on one thread (about half a minute for saliency at 491 tokens), so
/// the page stops here and says so.
pub const MAX_TOKENS: usize = 512;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    pub text: String,
    pub target: TargetChoice,
    pub kind: TargetKind,
    /// Contrastive runs explain value(target) − value(foil).
    pub foil: Option<TargetChoice>,
    pub method: String,
    pub params: MethodParams,
    /// Text read as the continuation of `text`, each of its tokens explained in turn; empty: none.
    pub continuation: String,
    /// Measure the main map's faithfulness (and each compared map's) after showing it.
    pub faithfulness: bool,
    /// Methods run side by side on the same input and target (with two or more, agreements too).
    pub compare: Vec<String>,
    pub view: ViewSettings,
}

/// How scores are shown; changing these never reruns the model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ViewSettings {
    pub granularity: Granularity,
    pub reduce: Reduce,
    pub normalisation: Normalisation,
    /// Colour strength: a normalised score of 1 / intensity already gets the full colour.
    pub intensity: f32,
}

/// How a word's or sentence's token scores become one score.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reduce {
    #[default]
    Sum,
    /// The score of largest magnitude, with its sign.
    MaxAbs,
}

/// How scores map to the colour range.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Normalisation {
    /// Divided by the largest |score| shown, so the strongest is full colour.
    #[default]
    MaxAbs,
    /// Raw scores, clamped to the colour range ([−1, 1] signed, [0, 1] unsigned): comparable
    /// across runs.
    None,
}

impl Reduce {
    pub const ALL: [Reduce; 2] = [Reduce::Sum, Reduce::MaxAbs];

    pub fn name(self) -> &'static str {
        match self {
            Reduce::Sum => "sum",
            Reduce::MaxAbs => "max-abs",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Reduce::Sum => "sum of token scores",
            Reduce::MaxAbs => "strongest token score",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.name() == name)
    }

    /// One score for the tokens' `scores`.
    pub fn apply(self, scores: &[f32]) -> f32 {
        match self {
            Reduce::Sum => scores.iter().sum(),
            Reduce::MaxAbs => {
                scores.iter().copied().max_by(|a, b| a.abs().total_cmp(&b.abs())).unwrap_or(0.0)
            }
        }
    }
}

impl Normalisation {
    pub const ALL: [Normalisation; 2] = [Normalisation::MaxAbs, Normalisation::None];

    pub fn name(self) -> &'static str {
        match self {
            Normalisation::MaxAbs => "max-abs",
            Normalisation::None => "none",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Normalisation::MaxAbs => "score ÷ largest |score|",
            Normalisation::None => "raw score (clamped)",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|n| n.name() == name)
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            text: EXAMPLE_TEXT.into(),
            target: TargetChoice::TopPrediction,
            kind: TargetKind::Prob,
            foil: None,
            method: METHODS[0].name().into(),
            params: MethodParams::default(),
            continuation: String::new(),
            faithfulness: true,
            compare: Vec::new(),
            view: ViewSettings::default(),
        }
    }
}

impl Default for ViewSettings {
    fn default() -> Self {
        Self {
            granularity: Granularity::Token,
            reduce: Reduce::Sum,
            normalisation: Normalisation::MaxAbs,
            intensity: 1.0,
        }
    }
}

impl Settings {
    /// The engine request for the main map (faithfulness and the continuation included).
    pub fn request(&self) -> Request {
        Request {
            target: TargetSpec {
                token: self.target.clone(),
                kind: self.kind,
                foil: self.foil.clone(),
            },
            params: self.params.clone(),
            top_k: TOP_K,
            max_tokens: Some(MAX_TOKENS),
            faithfulness: self.faithfulness,
            continuation: (!self.continuation.is_empty()).then(|| self.continuation.clone()),
            ..Request::new(self.text.clone(), &self.method)
        }
    }

    /// The settings the run reads: the method's own, plus the baseline and seed of the
    /// faithfulness check when it is on.
    pub fn params_in_use(&self) -> Vec<Param> {
        let own = methods::by_name(&self.method).map(|m| m.params()).unwrap_or_default();
        let check: &[Param] = if self.faithfulness { &[Param::Baseline, Param::Seed] } else { &[] };
        let mut used: Vec<Param> = own.to_vec();
        used.extend(check.iter().filter(|p| !own.contains(p)));
        used
    }
}

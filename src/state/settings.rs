//! Every choice the user makes on the page, in one serialisable value. A run is always built from
//! it by [`Settings::request`], so a share link or a saved state that restores `Settings`
//! restores the same computation and the same view.
//!
//! Settings from outside (a link, the saved state, an imported file) may ask for anything: every
//! deserialised `Settings` is [`Settings::checked`] first, so no text, list or number in it is
//! past the page's bounds, whatever path it came by.

use crate::engine::attribution::grouping::Granularity;
use crate::engine::attribution::methods::{
    self, MethodParams, Param, MAX_BUDGET, MAX_SAMPLES, MAX_STEPS, METHODS, MIN_STEPS,
};
use crate::engine::{Request, TargetChoice, TargetKind, TargetSpec};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

const EXAMPLE_TEXT: &str = "The Eiffel Tower is located in the city of";
const TOP_K: usize = 5;
/// Longest text the page attributes. Memory stays bounded (the graph budget in
/// `attribution::memory`: 0.36 GB of wasm memory at 64 tokens, 0.69 GB at 491, measured), but time
/// grows faster than length on one thread (about half a minute for saliency at 491 tokens), so
/// the page stops here and says so.
pub const MAX_TOKENS: usize = 512;
/// Longest text or continuation taken from outside, in bytes: what a link's JSON can hold at
/// most (4 MiB inflated), and more than a browser's local storage keeps.
pub const MAX_TEXT_BYTES: usize = 4 << 20;
/// Longest token text a result or a target may hold, in bytes. Real tokens are a few dozen bytes; a link or
/// a file could hold megabytes in one.
pub const MAX_TOKEN_TEXT_BYTES: usize = 1024;
/// SmoothGrad's noise level, as a fraction of the embeddings' RMS: past this the input is noise.
pub const MAX_SIGMA: f32 = 10.0;
/// A layer or head index past any model's.
const MAX_INDEX: usize = 1 << 16;
/// The colour intensity's range (the page's slider).
pub const INTENSITY: (f32, f32) = (0.2, 5.0);

// `remote = "Self"`: serde writes inherent `serialize`/`deserialize` functions, and the trait
// impls below wrap them, so deserialising always checks.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, remote = "Self")]
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
    /// The page's collapsible panels (names from [`PANELS`]) that are closed.
    pub collapsed: Vec<String>,
}

/// The page's collapsible panels, in page order: the method's settings, the view settings, the
/// faithfulness check, compared methods, share and export.
pub const PANELS: [&str; 5] = ["settings", "view", "faithfulness", "compare", "share"];

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
            Reduce::MaxAbs => strongest(scores).map_or(0.0, |i| scores[i]),
        }
    }
}

/// The index of the score of largest magnitude (the last of equals), the one `MaxAbs` keeps.
pub fn strongest(scores: &[f32]) -> Option<usize> {
    (0..scores.len()).max_by(|&a, &b| scores[a].abs().total_cmp(&scores[b].abs()))
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
            collapsed: vec!["compare".into()],
        }
    }
}

impl Serialize for Settings {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        Settings::serialize(self, serializer)
    }
}

impl<'de> Deserialize<'de> for Settings {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Settings::deserialize(deserializer)?.checked().0)
    }
}

/// `value` within `low..=high`, and a note when it was not.
fn clamp<T: PartialOrd + Copy + std::fmt::Display>(
    value: &mut T,
    (low, high): (T, T),
    what: &str,
    notes: &mut Vec<String>,
) {
    let bounded = if *value < low {
        low
    } else if *value > high {
        high
    } else {
        *value
    };
    if bounded != *value {
        notes.push(format!("{what} {value} is out of range; using {bounded}"));
        *value = bounded;
    }
}

/// `text` cut to at most `max` bytes (at a character boundary), and a note when it was longer.
fn truncate(text: &mut String, max: usize, what: &str, notes: &mut Vec<String>) {
    if text.len() > max {
        let cut = (0..=max).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
        notes.push(format!("the {what} is {} bytes long; keeping its first {cut}", text.len()));
        text.truncate(cut);
    }
}

/// A typed token must be one token's text: a longer one is no token, and is dropped.
fn token_choice(choice: TargetChoice, what: &str, notes: &mut Vec<String>) -> Option<TargetChoice> {
    match choice {
        TargetChoice::Text(text) if text.len() > MAX_TOKEN_TEXT_BYTES => {
            notes.push(format!(
                "the {what} token's text is {} bytes long, longer than any token",
                text.len()
            ));
            None
        }
        choice => Some(choice),
    }
}

impl Settings {
    /// These settings within the page's bounds, and what had to change, in words: a known method;
    /// known compared methods, each once, in the registry's order; numbers within the ranges the
    /// engine and the page accept (finite); texts within [`MAX_TEXT_BYTES`].
    pub fn checked(mut self) -> (Self, Vec<String>) {
        let mut notes = Vec::new();
        if methods::by_name(&self.method).is_err() {
            let shown: String = self.method.chars().take(40).collect();
            notes.push(format!("the method \"{shown}\" is unknown; using {}", METHODS[0].label()));
            self.method = METHODS[0].name().into();
        }
        let asked = self.compare.len();
        let mut compare: Vec<String> = Vec::new();
        for m in METHODS.iter().map(|m| m.name()) {
            if self.compare.iter().any(|c| c == m) {
                compare.push(m.into());
            }
        }
        if compare.len() != asked {
            notes.push(format!(
                "the comparison listed {asked} methods; comparing the {} known ones, each once",
                compare.len()
            ));
        }
        self.compare = compare;
        let p = &mut self.params;
        clamp(&mut p.steps, (MIN_STEPS, MAX_STEPS), "steps", &mut notes);
        clamp(&mut p.samples, (1, MAX_SAMPLES), "samples", &mut notes);
        clamp(&mut p.budget, (2, MAX_BUDGET), "budget", &mut notes);
        if !p.sigma.is_finite() {
            notes.push("σ is not a number; using the default".into());
            p.sigma = MethodParams::default().sigma;
        }
        clamp(&mut p.sigma, (0.0, MAX_SIGMA), "σ", &mut notes);
        for (index, what) in [(&mut p.layer, "layer"), (&mut p.head, "head")] {
            if index.is_some_and(|i| i >= MAX_INDEX) {
                notes.push(format!(
                    "{what} {} is past any model's; using the mean",
                    index.unwrap_or(0)
                ));
                *index = None;
            }
        }
        let view = &mut self.view;
        if !view.intensity.is_finite() {
            view.intensity = ViewSettings::default().intensity;
        }
        clamp(&mut view.intensity, INTENSITY, "intensity", &mut notes);
        let collapsed: Vec<String> = PANELS
            .iter()
            .filter(|p| view.collapsed.iter().any(|c| c == *p))
            .map(|p| p.to_string())
            .collect();
        if collapsed.len() != view.collapsed.len() {
            notes.push("the link named panels this page does not have; ignoring them".into());
        }
        view.collapsed = collapsed;
        truncate(&mut self.text, MAX_TEXT_BYTES, "text", &mut notes);
        truncate(&mut self.continuation, MAX_TEXT_BYTES, "continuation", &mut notes);
        let target = std::mem::replace(&mut self.target, TargetChoice::TopPrediction);
        self.target =
            token_choice(target, "target", &mut notes).unwrap_or(TargetChoice::TopPrediction);
        self.foil = self.foil.take().and_then(|foil| token_choice(foil, "foil", &mut notes));
        if self.foil.is_some() && self.foil == Some(self.target.clone()) {
            notes.push("the foil is the target; explaining the target alone".into());
            self.foil = None;
        }
        (self, notes)
    }

    /// Settings from outside as JSON, checked, with what had to change.
    pub fn from_outside(
        value: serde_json::Value,
    ) -> Result<(Self, Vec<String>), serde_json::Error> {
        Ok(Settings::deserialize(value)?.checked())
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    fn from_json(json: serde_json::Value) -> (Settings, Vec<String>) {
        Settings::from_outside(json).unwrap()
    }

    #[test]
    fn settings_from_outside_stay_within_the_bounds() {
        let (s, notes) = from_json(serde_json::json!({
            "method": "tea-leaves",
            "compare": vec!["occlusion"; 5000].into_iter().chain(["saliency", "<b>", "saliency"]).collect::<Vec<_>>(),
            "params": { "steps": 1_000_000_000u64, "samples": 0, "sigma": 1e30, "layer": 1u64 << 40, "budget": 1u64 << 50 },
            "view": { "intensity": -3.0 },
            "target": { "Text": "x".repeat(5000) },
            "foil": { "Id": 7 },
        }));
        assert_eq!(s.method, "saliency");
        assert_eq!(
            s.compare,
            ["saliency", "occlusion"],
            "known methods, once each, registry order"
        );
        assert_eq!((s.params.steps, s.params.samples, s.params.sigma), (MAX_STEPS, 1, MAX_SIGMA));
        assert_eq!((s.params.layer, s.params.budget), (None, MAX_BUDGET));
        assert_eq!(s.view.intensity, INTENSITY.0);
        assert_eq!(s.target, TargetChoice::TopPrediction);
        assert_eq!(s.foil, Some(TargetChoice::Id(7)));
        assert_eq!(notes.len(), 9, "{notes:#?}");
        // The same bounds whatever the path: plain deserialisation checks too.
        let plain: Settings =
            serde_json::from_str(r#"{"compare":["rollout","rollout"],"params":{"steps":1}}"#)
                .unwrap();
        assert_eq!((plain.compare.len(), plain.params.steps), (1, MIN_STEPS));
        // Settings within the bounds come back unchanged, without notes.
        let default = Settings::default();
        assert_eq!(default.clone().checked(), (default, vec![]));
    }

    #[test]
    fn texts_from_outside_are_cut_at_a_character() {
        let mut text = "é".repeat(MAX_TEXT_BYTES / 2 + 10);
        let mut notes = vec![];
        truncate(&mut text, MAX_TEXT_BYTES - 1, "text", &mut notes);
        assert_eq!(text.len(), MAX_TEXT_BYTES - 2, "never inside a two-byte character");
        assert_eq!(notes.len(), 1);
    }
}

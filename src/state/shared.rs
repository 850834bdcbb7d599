//! What a share link, an embed or an exported file carries: which model, every setting, and
//! optionally the computed result. Links hold a compact [`Snapshot`] (scores quantised to 16 bits);
//! exported files hold the full [`SavedResult`]. Both are plain serde values, so they are tested
//! natively; `crate::state::link` turns a [`SharedState`] into a link and back.
//!
//! Everything here may come from a hostile link or file. Deserialising checks what each field
//! can check alone (a sha256 is 64 hex digits, a model URL is a path or an http(s) address, the
//! settings are [`Settings::checked`]); [`Snapshot::output`] and [`SavedResult::output`] then
//! check the result as the views will show it (`result::check`), and refuse more tokens than the
//! page explains.

use crate::engine::api::continuation::{Continuation, ContinuationRow};
use crate::engine::api::{Attribution, Prediction};
use crate::engine::attribution::methods::MethodParams;
use crate::engine::model::tokenizer::Token;
use crate::engine::{BackendKind, TargetKind};
use crate::state::link::{self, LinkError};
use crate::state::report_card::SharedReport;
use crate::state::result::{check, Checked, ResultError, RunOutput};
use crate::state::settings::{Settings, MAX_TOKENS};
use serde::{Deserialize, Serialize};
use std::fmt;

/// A link's state, and what its settings asked for beyond the page's bounds, in words (the state
/// holds them within the bounds).
pub fn open_link(payload: &str) -> Result<(SharedState, Vec<String>), LinkError> {
    let (value, _) = link::decode::<serde_json::Value>(payload)?;
    let notes = match value.get("settings") {
        Some(settings) => {
            Settings::from_outside(settings.clone()).map(|(_, notes)| notes).unwrap_or_default()
        }
        None => Vec::new(),
    };
    let state = serde_json::from_value(value).map_err(|e| LinkError::NotJson(e.to_string()))?;
    Ok((state, notes))
}

/// The page state in a link (`#s=`), an embed (`embed.html#s=`) or the page's own fragment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SharedState {
    pub model: ModelRef,
    pub settings: Settings,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<Snapshot>,
    /// A computed report card (`SharedReport::checked` before a view shows it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<SharedReport>,
}

/// Which model computed (or should compute) the result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelRef {
    /// A model fetched from `url`, relative to the page for a model served with it (so a link
    /// keeps working on another copy of the page). `sha256` and `bytes` say which file was loaded;
    /// they are absent when the state was saved before any model had loaded.
    Url {
        url: ModelUrl,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sha256: Option<Sha256>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bytes: Option<u64>,
    },
    /// A file from the sharer's disk: whoever opens the link has to pick it themselves.
    File { name: FileName, sha256: Sha256, bytes: u64 },
}

/// Why a field from outside is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError(String);

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A string from outside that passed its check, as its own type: one per kind of field.
macro_rules! checked_string {
    ($(#[$doc:meta])* $name:ident, $check:expr) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl TryFrom<String> for $name {
            type Error = FieldError;

            fn try_from(text: String) -> Result<Self, FieldError> {
                let check: fn(&str) -> Result<(), FieldError> = $check;
                check(&text).map(|()| $name(text))
            }
        }

        impl From<$name> for String {
            fn from(field: $name) -> String {
                field.0
            }
        }

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
    };
}

checked_string!(
    /// A file's sha256: exactly 64 lowercase hex digits.
    Sha256,
    |hex| match hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        true => Ok(()),
        false => Err(FieldError("a sha256 must be 64 lowercase hex digits".into())),
    }
);

impl Sha256 {
    /// The first 12 digits, as the page shows a model's hash.
    pub fn short(&self) -> &str {
        &self.0[..12]
    }
}

/// Longest model URL or file name a link may name.
pub const MAX_MODEL_NAME_BYTES: usize = 2048;

/// Text of at most [`MAX_MODEL_NAME_BYTES`] with no control characters.
fn plain_text(text: &str, what: &str) -> Result<(), FieldError> {
    match text.len() <= MAX_MODEL_NAME_BYTES && !text.chars().any(char::is_control) {
        true => Ok(()),
        false => Err(FieldError(format!(
            "a model {what} must be at most {MAX_MODEL_NAME_BYTES} bytes without control characters"
        ))),
    }
}

checked_string!(
    /// Where a model is fetched from: a path relative to the page, or an http(s) address.
    ModelUrl,
    |url| {
        plain_text(url, "URL")?;
        // A scheme is letters, digits, `+`, `-` and `.` before the first `:`, starting with a
        // letter; a relative path has none (or a `/`, `?` or `#` comes first).
        let scheme = url
            .split_once(':')
            .map(|(s, _)| s)
            .filter(|s| s.starts_with(|c: char| c.is_ascii_alphabetic()))
            .filter(|s| s.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)));
        match scheme.map(str::to_ascii_lowercase).as_deref() {
            None | Some("http") | Some("https") => Ok(()),
            Some(other) => Err(FieldError(format!(
                "a model URL must be http(s) or relative to the page, not \"{}:\"",
                other.chars().take(16).collect::<String>()
            ))),
        }
    }
);

checked_string!(
    /// A model file's name as the sharer's disk had it.
    FileName,
    |name| plain_text(name, "file name")
);

impl ModelRef {
    pub fn sha256(&self) -> Option<&Sha256> {
        match self {
            ModelRef::Url { sha256, .. } => sha256.as_ref(),
            ModelRef::File { sha256, .. } => Some(sha256),
        }
    }

    pub fn bytes(&self) -> Option<u64> {
        match self {
            ModelRef::Url { bytes, .. } => *bytes,
            ModelRef::File { bytes, .. } => Some(*bytes),
        }
    }
}

/// Scores as 16-bit integers relative to the largest |score|: `score ≈ q · max / 32767`, off by at
/// most half a [`step`](Quantised::step). A third of the JSON of `f32` decimals, and compressible.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Quantised {
    /// The largest finite |score|; 0 when every score is 0 (or not finite).
    pub max: f32,
    pub q: Vec<i16>,
}

impl Quantised {
    const LEVELS: f32 = i16::MAX as f32;
    /// How exact the dequantised scores are, relative to the largest |score|: half a step.
    pub const RESOLUTION: f32 = 0.5 / Self::LEVELS;

    pub fn new(scores: &[f32]) -> Self {
        let max = scores.iter().filter(|s| s.is_finite()).fold(0f32, |m, s| m.max(s.abs()));
        let q = scores
            .iter()
            .map(|s| match s.is_finite() && max > 0.0 {
                true => (s / max * Self::LEVELS).round() as i16,
                false => 0,
            })
            .collect();
        Self { max, q }
    }

    pub fn values(&self) -> Vec<f32> {
        self.q.iter().map(|&q| q as f32 * self.step()).collect()
    }

    /// The difference between two neighbouring levels: the scores' resolution.
    pub fn step(&self) -> f32 {
        self.max / Self::LEVELS
    }
}

/// Tokens as parallel lists, which JSON writes shorter than a list of objects.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TokenList {
    pub ids: Vec<u32>,
    pub texts: Vec<String>,
    /// Indices of control tokens.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub special: Vec<usize>,
}

impl TokenList {
    fn of(tokens: &[Token]) -> Self {
        Self {
            ids: tokens.iter().map(|t| t.id).collect(),
            texts: tokens.iter().map(|t| t.text.clone()).collect(),
            special: tokens.iter().enumerate().filter(|(_, t)| t.special).map(|(i, _)| i).collect(),
        }
    }

    fn len(&self) -> usize {
        self.ids.len()
    }

    /// The tokens; `byte_len` is not kept (no view reads it), so it is the text's length, or 0
    /// for a control token.
    fn tokens(&self) -> Result<Vec<Token>, ResultError> {
        if self.texts.len() != self.ids.len() || self.special.iter().any(|&i| i >= self.ids.len()) {
            return Err(ResultError::Inconsistent("token ids and texts"));
        }
        Ok(self
            .ids
            .iter()
            .zip(&self.texts)
            .enumerate()
            .map(|(i, (&id, text))| {
                let special = self.special.contains(&i);
                Token {
                    id,
                    text: text.clone(),
                    byte_len: if special { 0 } else { text.len() },
                    special,
                }
            })
            .collect())
    }
}

/// A computed result in a link: what the map, the predictions and the legend show.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub tokens: TokenList,
    pub target: Prediction,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub foil: Option<Prediction>,
    pub kind: TargetKind,
    pub method: String,
    pub signed: bool,
    /// The explained quantity at the input, f(x).
    pub value: f64,
    pub top_k: Vec<Prediction>,
    pub scores: Quantised,
    /// Sampling methods: the scores' standard errors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errors: Option<Quantised>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continuation: Option<ContinuationSnapshot>,
    /// Where it was computed (left out for the CPU, as links made before the GPU backend are).
    #[serde(default, skip_serializing_if = "BackendKind::is_cpu")]
    pub backend: BackendKind,
}

/// The continuation's tokens (after the text's) and one quantised row per continuation token.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ContinuationSnapshot {
    pub tokens: TokenList,
    pub rows: Vec<RowSnapshot>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RowSnapshot {
    pub target: Prediction,
    pub scores: Quantised,
}

impl Snapshot {
    pub fn of(a: &Attribution) -> Self {
        Self {
            tokens: TokenList::of(&a.tokens),
            target: a.target.clone(),
            foil: a.foil.clone(),
            kind: a.target_kind,
            method: a.method.clone(),
            signed: a.signed,
            value: a.value,
            top_k: a.top_k.clone(),
            scores: Quantised::new(&a.scores),
            errors: a.standard_errors.as_deref().map(Quantised::new),
            continuation: a.continuation.as_ref().map(|c| ContinuationSnapshot {
                tokens: TokenList::of(&c.tokens[c.output_start..]),
                rows: c
                    .rows
                    .iter()
                    .map(|r| RowSnapshot {
                        target: r.target.clone(),
                        scores: Quantised::new(&r.scores),
                    })
                    .collect(),
            }),
            backend: a.backend,
        }
    }

    /// The result this snapshot shows (scores dequantised, `params` as given: a snapshot keeps
    /// them in its settings), checked as the views will show it.
    pub fn output(&self, params: &MethodParams) -> Result<Checked<RunOutput>, ResultError> {
        let total = self.tokens.len() + self.continuation.as_ref().map_or(0, |c| c.tokens.len());
        if total > MAX_TOKENS {
            return Err(ResultError::TooLong(total));
        }
        let tokens = self.tokens.tokens()?;
        let continuation = match &self.continuation {
            None => None,
            Some(c) => Some(Continuation {
                tokens: [tokens.clone(), c.tokens.tokens()?].concat(),
                output_start: tokens.len(),
                rows: c
                    .rows
                    .iter()
                    .map(|r| ContinuationRow {
                        target: r.target.clone(),
                        scores: r.scores.values(),
                    })
                    .collect(),
            }),
        };
        check(RunOutput::of(Attribution {
            tokens,
            target: self.target.clone(),
            foil: self.foil.clone(),
            target_kind: self.kind,
            value: self.value,
            top_k: self.top_k.clone(),
            method: self.method.clone(),
            params: params.clone(),
            signed: self.signed,
            scores: self.scores.values(),
            completeness_error: None,
            path_gradients: None,
            standard_errors: self.errors.as_ref().map(Quantised::values),
            evaluations: None,
            faithfulness: None,
            continuation,
            backend: self.backend,
        }))
    }
}

/// The exported JSON of a result (`export-json`), which the page also loads back.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SavedResult {
    /// The Salient version that computed it.
    pub salient: String,
    pub model: SavedModel,
    pub settings: Settings,
    /// Tokens, scores, target, foil, quantity, method, params, completeness; the faithfulness
    /// report when it was measured.
    pub result: Attribution,
    /// f(baseline), for methods that report completeness.
    #[serde(default)]
    pub baseline_value: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SavedModel {
    pub name: String,
    pub sha256: String,
    pub bytes: u64,
    /// Where it was fetched from; `None` for a local file.
    pub url: Option<String>,
}

impl SavedResult {
    /// The result this file holds, checked exactly as the views will show it (the same limits
    /// and consistency as a link's snapshot, and its faithfulness report too).
    pub fn output(&self) -> Result<Checked<RunOutput>, ResultError> {
        check(RunOutput {
            baseline_value: self.baseline_value,
            ..RunOutput::of(self.result.clone())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::attribution::problem::Baseline;
    use crate::engine::TargetChoice;

    fn token(id: u32, text: &str) -> Token {
        Token { id, text: text.into(), byte_len: text.len(), special: false }
    }

    fn prediction(id: u32, text: &str, prob: f32) -> Prediction {
        Prediction { id, text: text.into(), prob }
    }

    fn attribution(texts: &[&str], scores: &[f32]) -> Attribution {
        let mut tokens: Vec<Token> =
            texts.iter().enumerate().map(|(i, t)| token(100 + i as u32, t)).collect();
        tokens[0] = Token { id: 1, text: "<|im_start|>".into(), byte_len: 0, special: true };
        Attribution {
            tokens,
            target: prediction(7042, " Paris", 0.4321),
            foil: None,
            target_kind: TargetKind::Prob,
            value: 0.4321,
            top_k: vec![prediction(7042, " Paris", 0.4321), prediction(4, " London", 0.01)],
            method: "saliency".into(),
            params: MethodParams::default(),
            signed: false,
            scores: scores.to_vec(),
            completeness_error: None,
            path_gradients: None,
            standard_errors: None,
            evaluations: None,
            faithfulness: None,
            continuation: None,
            backend: BackendKind::Cpu,
        }
    }

    fn url(text: &str) -> ModelUrl {
        text.to_string().try_into().unwrap()
    }

    fn sha(hex: String) -> Sha256 {
        hex.try_into().unwrap()
    }

    fn states() -> Vec<SharedState> {
        let plain = SharedState {
            model: ModelRef::Url {
                url: url(&crate::state::default_model::url()),
                sha256: None,
                bytes: None,
            },
            settings: Settings::default(),
            snapshot: None,
            report: None,
        };
        let hostile_text = "<script>alert(1)</script><b>x</b> \"quotes\" & ampersands";
        let hostile = SharedState {
            model: ModelRef::Url {
                url: url("https://example.org/a model.gguf?x=<y>#z"),
                sha256: Some(sha("ab".repeat(32))),
                bytes: Some(386_000_000),
            },
            settings: Settings {
                text: hostile_text.into(),
                target: TargetChoice::Text(" </b>".into()),
                foil: Some(TargetChoice::Id(4)),
                kind: TargetKind::Logit,
                method: "integrated_gradients".into(),
                params: MethodParams {
                    steps: 7,
                    baseline: Baseline::Zero,
                    seed: 99,
                    layer: Some(3),
                    ..MethodParams::default()
                },
                compare: vec!["saliency".into(), "occlusion".into()],
                ..Settings::default()
            },
            snapshot: Some(Snapshot::of(&attribution(
                &["<s>", "<script>", "alert(1)", "</script><b>x</b>"],
                &[0.0, 1.5, -0.25, 3.0],
            ))),
            report: None,
        };
        let mut unicode_result = attribution(
            &["x", "Ünïcødé", " 東京", " 🙂", "\n", "\\xF0"],
            &[0.1, 2e-9, 5e-3, 1.0, 0.0, 0.7],
        );
        unicode_result.signed = true;
        unicode_result.method = "grad_x_input".into();
        unicode_result.foil = Some(prediction(9, " Tōkyō", 0.002));
        unicode_result.continuation = Some(Continuation {
            tokens: [unicode_result.tokens.clone(), vec![token(50, " é"), token(51, "!")]].concat(),
            output_start: 6,
            rows: vec![
                ContinuationRow {
                    target: prediction(50, " é", 0.5),
                    scores: vec![0.5, -0.5, 0.25, 0.0, 1.0, -2.0],
                },
                ContinuationRow { target: prediction(51, "!", 0.25), scores: vec![0.0; 7] },
            ],
        });
        let unicode = SharedState {
            model: ModelRef::File {
                name: "mön model.gguf".to_string().try_into().unwrap(),
                sha256: sha("0f".repeat(32)),
                bytes: 98_362_432,
            },
            settings: Settings {
                text: "Ünïcødé 東京 🙂\n\t".into(),
                continuation: " é!".into(),
                ..Settings::default()
            },
            snapshot: Some(Snapshot::of(&unicode_result)),
            report: Some(crate::state::report_card::tests::a_report()),
        };
        let mut sampled_result = attribution(&["a", " b", "c"], &[0.5, -0.25, 0.125]);
        sampled_result.method = "kernel_shap".into();
        sampled_result.signed = true;
        sampled_result.standard_errors = Some(vec![0.01, 0.02, 0.0]);
        sampled_result.evaluations = Some(511);
        let sampled = SharedState {
            settings: Settings {
                text: "a bc".into(),
                method: "kernel_shap".into(),
                params: MethodParams {
                    features: crate::engine::attribution::grouping::Granularity::Word,
                    budget: 1000,
                    seed: 7,
                    ..MethodParams::default()
                },
                ..Settings::default()
            },
            snapshot: Some(Snapshot::of(&sampled_result)),
            ..plain.clone()
        };
        vec![plain, hostile, unicode, sampled]
    }

    #[test]
    fn shared_states_round_trip_through_links() {
        for state in states() {
            let payload = link::encode(&state);
            assert_eq!(link::decode::<SharedState>(&payload).unwrap(), (state.clone(), 1));
        }
        // And a snapshot's result survives too (scores up to quantisation).
        let state = &states()[2];
        let snapshot = state.snapshot.as_ref().unwrap();
        let shown = snapshot.output(&state.settings.params).unwrap();
        assert_eq!(Snapshot::of(&shown.attribution), *snapshot);
        // A sampling method's standard errors travel with its scores.
        let state = &states()[3];
        let shown = state.snapshot.as_ref().unwrap().output(&state.settings.params).unwrap();
        let errors = shown.attribution.standard_errors.as_ref().unwrap();
        let expected = [0.01, 0.02, 0.0];
        assert!(
            errors.iter().zip(expected).all(|(e, x)| (e - x).abs() <= 0.02 * 1e-4),
            "{errors:?}"
        );
        assert_eq!(shown.attribution.params.budget, 1000);
    }

    #[test]
    fn quantisation_error_is_at_most_half_a_step() {
        // xorshift: scores over many magnitudes and both signs, plus zeros and a non-finite one.
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut scores: Vec<f32> = (0..2000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let unit = (x >> 11) as f64 / (1u64 << 53) as f64;
                ((unit - 0.5) * 10f64.powi((x % 9) as i32 - 6)) as f32
            })
            .collect();
        scores.extend([0.0, -0.0, f32::NAN]);
        let q = Quantised::new(&scores);
        let max = scores.iter().filter(|s| s.is_finite()).fold(0f32, |m, s| m.max(s.abs()));
        assert_eq!(q.max, max);
        for (s, v) in scores.iter().zip(q.values()) {
            let expected = if s.is_finite() { *s } else { 0.0 };
            assert!(
                (expected - v).abs() <= q.step() * 0.5 * (1.0 + 1e-4),
                "{s} → {v}, step {}",
                q.step()
            );
        }
        assert_eq!(Quantised::new(&[0.0, 0.0]).values(), vec![0.0, 0.0]);
        assert_eq!(Quantised::new(&[]).q, Vec::<i16>::new());
    }

    /// `link::encode(&states()[1])` as v1 wrote it, committed: a future format change must keep
    /// opening it (a new format gets a new tag and a decoder beside v1's).
    const V1_FIXTURE: &str = "v1.pVJNj9owFPwrkStVrZSFfFDYRSk9V-qhh95YhJzkkVg4dtZ2trC7-e8dm0agniotKEr88t7MvJm8sk7XJNn6lQ3memOtc71dz-d04l0vaaZNM-dR6J01zXD4dvpanDcfXljMbMuzL0vM8PJ9f2CVZ0eWrfP7ZRJ-4wh8ck6oxnpxjk4OTIWtjOjdhksy7lP6uZj_LRTl5lTMy030yJ4GDaxHFn2MsAIZy1VtQeG4ach5sF8XsMgPMBAdhapxlroRDo0HLYIh31Fc4HVHrtW-QShHjeGO6j1utSDlPHDPDe-CSuuox8MK-3BLUijC1AsZ7d0KfuJtusRBNB1n62SW-jUJ4A8PMZP8TAYmxKwljpoapAR_pRV8GLgTWgHPK-TCtYdBKrIAdGYg39VBCAi3oJLQVp3RqatKDtYP7mL2LOi3lwnxgOZGuDPwnD6SQquheqi8YDt0OCptOuDYibbjpzte-n29DcqG4XR2SUrx3rY6mBvgghsCtq-3aZwm_spw5RDhk_R1VryJbm-RinvbAHWKFo9Tur76b8B-D9tTJTgy2ia78TZYAdNWySKLp-8l-oktQ0ZGl97vRZ6l18RD9SbgG-OQkPK5HLi0cPeZy4EmAMDrfn8E__9TXjoX17YfWtVa3fQl6eh3q7ShYB8Mx7cwS2L25DeN02V-v4jvslWexnm2Wq524zj-AQ";

    #[test]
    fn the_committed_v1_link_still_opens() {
        let (state, version) = link::decode::<SharedState>(V1_FIXTURE).unwrap();
        assert_eq!(version, 1);
        assert_eq!(state, states()[1], "the v1 fixture decodes to the state it was made from");
    }

    #[test]
    fn hostile_links_and_snapshots_give_errors() {
        for payload in ["", "v1.", "v1.@@@", "v2.abc", "s=v1.abc", "v1.AAAA"] {
            let error = link::decode::<SharedState>(payload).unwrap_err();
            assert!(
                error.to_string().starts_with("This share link cannot be opened"),
                "{payload}: {error}"
            );
        }
        // Valid codec, but not a state.
        let not_state = link::encode(&serde_json::json!({ "model": 3, "settings": [] }));
        assert!(matches!(link::decode::<SharedState>(&not_state), Err(LinkError::NotJson(_))));
        // Valid state whose snapshot does not hold together: an error to show, never a panic.
        let params = MethodParams::default();
        let good = states()[2].snapshot.clone().unwrap();
        let refused = |edit: &dyn Fn(&mut Snapshot)| {
            let mut snapshot = good.clone();
            edit(&mut snapshot);
            snapshot.output(&params).unwrap_err()
        };
        assert_eq!(
            refused(&|s| {
                s.scores.q.pop();
            }),
            ResultError::Inconsistent("scores and tokens")
        );
        assert_eq!(
            refused(&|s| s.tokens.special = vec![usize::MAX]),
            ResultError::Inconsistent("token ids and texts")
        );
        assert_eq!(
            refused(&|s| s.tokens.ids = vec![0; MAX_TOKENS + 1]),
            ResultError::TooLong(MAX_TOKENS + 3)
        );
        assert!(matches!(
            refused(&|s| s.method = "<img src=x onerror=alert(1)>".into()),
            ResultError::UnknownMethod(_)
        ));
        assert_eq!(
            refused(&|s| s.continuation.as_mut().unwrap().rows[1].scores.q.push(0)),
            ResultError::Inconsistent("continuation rows and tokens")
        );
        // A continuation with no tokens (the matrix would have no columns to show).
        assert_eq!(
            refused(&|s| {
                let c = s.continuation.as_mut().unwrap();
                (c.tokens.ids, c.tokens.texts, c.rows) = (vec![], vec![], vec![]);
            }),
            ResultError::Inconsistent("continuation rows and tokens")
        );
        assert_eq!(refused(&|s| s.scores.max = f32::NAN), ResultError::BadNumber("a score"));
        assert_eq!(
            refused(&|s| s.signed = false),
            ResultError::Inconsistent("the method and its sign")
        );
        // The hostile fixture's snapshot claims an unsigned method with a negative score.
        assert_eq!(
            states()[1].snapshot.as_ref().unwrap().output(&params).unwrap_err(),
            ResultError::BadNumber("a negative score of an unsigned method")
        );
    }

    #[test]
    fn saved_results_round_trip() {
        let state = &states()[2];
        let result = state.snapshot.as_ref().unwrap().output(&state.settings.params).unwrap();
        let saved = SavedResult {
            salient: env!("CARGO_PKG_VERSION").into(),
            model: SavedModel {
                name: "m.gguf".into(),
                sha256: "0f".repeat(32),
                bytes: 1,
                url: None,
            },
            settings: state.settings.clone(),
            result: result.attribution.clone(),
            baseline_value: Some(0.25),
        };
        let json = serde_json::to_string(&saved).unwrap();
        let back: SavedResult = serde_json::from_str(&json).unwrap();
        assert_eq!(back, saved);
        assert_eq!(back.output().unwrap().attribution, result.attribution);
    }
}

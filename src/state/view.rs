//! What the views compute from a checked result before drawing it: the map on the text (the
//! next-token map or a continuation row), its spans per token, word or sentence, the
//! continuation's matrix, and how a recomputed result compares with a snapshot. Native, so the
//! tests and the fuzzer reach every function a view calls; the views only turn these into
//! elements.

use super::colour::Scale;
use super::result::{Checked, RunOutput};
use super::settings::{strongest, Reduce, ViewSettings};
use crate::engine::attribution::grouping::{group, Granularity};
use crate::engine::attribution::methods;
use crate::engine::model::token_text::text_to_bytes;
use crate::engine::model::tokenizer::Token;
use crate::engine::{Attribution, BackendKind, TargetKind};
use std::ops::RangeInclusive;

/// One map: tokens and one score each.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TokenMap {
    pub tokens: Vec<Token>,
    pub scores: Vec<f32>,
    /// Signed scores get the diverging colour scale.
    pub signed: bool,
    /// Sampling methods: each score's standard error.
    pub errors: Option<Vec<f32>>,
}

/// The map on the text and what it explains.
#[derive(Clone, Debug, PartialEq)]
pub struct ShownMap {
    pub map: TokenMap,
    pub method: String,
    /// The explained quantity, e.g. `p(" Paris") − p(" London")`.
    pub quantity: String,
    /// Set when a continuation row is shown: (row, its token's text).
    pub row: Option<(usize, String)>,
}

/// How an explained quantity reads: `p(" Paris")`, or `p(" Paris") − p(" London")` with a foil.
pub fn quantity(kind: TargetKind, target: &str, foil: Option<&str>) -> String {
    let value = |text: &str| format!("{}({text:?})", kind.symbol());
    match foil {
        Some(foil) => format!("{} − {}", value(target), value(foil)),
        None => value(target),
    }
}

/// A method's label from the registry (its name if unknown).
pub fn method_label(name: &str) -> &str {
    methods::by_name(name).map(|m| m.label()).unwrap_or(name)
}

/// The map shown on the text: continuation row `row` when there is one, else the next-token map.
pub fn shown_map(output: &Checked<RunOutput>, row: Option<usize>) -> ShownMap {
    let a = &output.attribution;
    let chosen = row.and_then(|j| {
        let continuation = a.continuation.as_ref()?;
        let row = continuation.rows.get(j)?;
        // The check made row j's scores one per token before continuation token j.
        let end = continuation.output_start + j;
        Some(ShownMap {
            map: TokenMap {
                tokens: continuation.tokens[..end].to_vec(),
                scores: row.scores.clone(),
                signed: a.signed,
                errors: None,
            },
            method: a.method.clone(),
            quantity: quantity(a.target_kind, &row.target.text, None),
            row: Some((j, row.target.text.clone())),
        })
    });
    chosen.unwrap_or_else(|| ShownMap {
        quantity: quantity(a.target_kind, &a.target.text, a.foil.as_ref().map(|f| f.text.as_str())),
        map: TokenMap {
            tokens: a.tokens.clone(),
            scores: a.scores.clone(),
            signed: a.signed,
            errors: a.standard_errors.clone(),
        },
        method: a.method.clone(),
        row: None,
    })
}

/// A highlighted span: a token, or the tokens of a word or sentence, with its score.
#[derive(Clone, Debug, PartialEq)]
pub struct Unit {
    pub first: usize,
    pub last: usize,
    pub score: f32,
    /// Its score's standard error, when the method gives them: a token's own; for a sum over
    /// tokens the sum of theirs (a bound: the tokens of one feature share its error).
    pub error: Option<f32>,
}

/// The spans of `map` under `view`, and the scale they are coloured with (normalised over them).
/// Every token is in exactly one span, in order.
pub fn units(map: &TokenMap, view: &ViewSettings) -> (Vec<Unit>, Scale) {
    let units: Vec<Unit> = match view.granularity {
        Granularity::Token => map
            .scores
            .iter()
            .enumerate()
            .map(|(i, s)| Unit { first: i, last: i, score: *s, error: error_of(map, i..=i, view) })
            .collect(),
        granularity => group(&map.tokens, &map.scores, granularity)
            .into_iter()
            .map(|g| Unit {
                first: g.first,
                last: g.last,
                score: view.reduce.apply(&map.scores[g.first..=g.last]),
                error: error_of(map, g.first..=g.last, view),
            })
            .collect(),
    };
    let scale = Scale::new(&units.iter().map(|u| u.score).collect::<Vec<_>>(), map.signed, view);
    (units, scale)
}

/// The standard error of the score `view` gives the tokens `range` of `map`.
fn error_of(map: &TokenMap, range: RangeInclusive<usize>, view: &ViewSettings) -> Option<f32> {
    let errors = map.errors.as_ref()?.get(range.clone())?;
    match view.reduce {
        Reduce::Sum => Some(errors.iter().sum()),
        // The score is one token's: that token's error.
        Reduce::MaxAbs => Some(errors[strongest(&map.scores[range])?]),
    }
}

/// The text a run's input tokens spell (an inserted BOS covers no bytes and is left out).
pub fn spelled(tokens: &[Token]) -> String {
    let bytes: Vec<u8> =
        tokens.iter().filter(|t| t.byte_len > 0).flat_map(|t| text_to_bytes(&t.text)).collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The continuation's token × earlier-token matrix: the tokens that are columns (every token but
/// the last, which explains nothing after it), where the continuation starts among them, and the
/// rows (each row's scores cover the columns before its token).
pub struct Matrix<'a> {
    pub columns: &'a [Token],
    pub output_start: usize,
    pub rows: &'a [crate::engine::api::continuation::ContinuationRow],
}

pub fn matrix(output: &Checked<RunOutput>) -> Option<Matrix<'_>> {
    let c = output.attribution.continuation.as_ref()?;
    let (_, columns) = c.tokens.split_last()?;
    Some(Matrix { columns, output_start: c.output_start, rows: &c.rows })
}

/// How a recomputed result compares with a result shown without computing it.
#[derive(Clone, Debug, PartialEq)]
pub enum Recomputed {
    /// Every score within `tolerance` of the shown one, and the largest |score| too.
    Same { max_diff: f32, tolerance: f32 },
    /// Some score, or the largest |score|, further than `tolerance`.
    Differs { max_diff: f32, tolerance: f32 },
    /// The recomputation tokenized the text differently: another model or tokenizer.
    OtherTokens,
}

/// The numeric precision of a backend's scores, relative to the largest |score|: two computations
/// of one result on it agree within it. On the CPU, f32 sums in another order (threads, SIMD
/// width, another machine); on a GPU, other kernels' orders, and the GPU's own arithmetic
/// (its tests hold it to this).
pub fn precision(backend: BackendKind) -> f32 {
    match backend {
        BackendKind::Cpu => 1e-4,
        BackendKind::Gpu => 1e-3,
    }
}

/// Compares `recomputed` with `shown`, whose scores are exact up to `resolution` (relative to
/// its largest |score|: half a quantisation step for a link's snapshot, 0 for a full-precision
/// file). The tolerance comes from the recomputed result, never from the shown one, so a doctored
/// snapshot cannot widen it: half a step of the recomputed scale plus the coarser precision of
/// the two backends (a snapshot claiming the GPU widens it at most to the GPU's).
pub fn compare_recomputed(
    shown: &Attribution,
    recomputed: &Attribution,
    resolution: f32,
) -> Recomputed {
    let ids = |a: &Attribution| a.tokens.iter().map(|t| t.id).collect::<Vec<_>>();
    if ids(shown) != ids(recomputed) || shown.scores.len() != recomputed.scores.len() {
        return Recomputed::OtherTokens;
    }
    let largest = |scores: &[f32]| scores.iter().fold(0f32, |m, s| m.max(s.abs()));
    let reference = largest(&recomputed.scores);
    let precision = precision(shown.backend).max(precision(recomputed.backend));
    let tolerance = reference * (resolution + precision);
    let max_diff = shown
        .scores
        .iter()
        .zip(&recomputed.scores)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()))
        .max((largest(&shown.scores) - reference).abs());
    match max_diff <= tolerance && shown.signed == recomputed.signed {
        true => Recomputed::Same { max_diff, tolerance },
        false => Recomputed::Differs { max_diff, tolerance },
    }
}

/// The first `n` characters of `text` (never cut inside a character): for hashes and names
/// shown in part.
pub fn prefix(text: &str, n: usize) -> &str {
    text.char_indices().nth(n).map_or(text, |(i, _)| &text[..i])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::api::Prediction;
    use crate::engine::attribution::methods::MethodParams;
    use crate::state::shared::{Quantised, Snapshot};

    fn attribution(scores: &[f32]) -> Attribution {
        let tokens = (0..scores.len())
            .map(|i| Token { id: i as u32, text: format!("t{i}"), byte_len: 2, special: false })
            .collect();
        let target = Prediction { id: 9, text: " x".into(), prob: 0.5 };
        Attribution {
            tokens,
            target: target.clone(),
            foil: None,
            target_kind: TargetKind::Prob,
            value: 0.5,
            top_k: vec![target],
            method: "grad_x_input".into(),
            params: MethodParams::default(),
            signed: true,
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

    /// A snapshot whose scores were rewritten, with a `max` so large that one quantisation step
    /// covers every real score: measured against the recomputed result, it differs.
    #[test]
    fn a_doctored_snapshot_is_not_the_same_result() {
        let real = attribution(&[0.02, -0.01, 0.03]);
        let mut snapshot = Snapshot::of(&real);
        snapshot.scores = Quantised { max: 1e6, q: vec![0, 0, 0] };
        let shown = snapshot.output(&real.params).unwrap();
        let verdict = compare_recomputed(&shown.attribution, &real, Quantised::RESOLUTION);
        assert!(matches!(verdict, Recomputed::Differs { .. }), "{verdict:?}");
        // The maxima must agree too: scores all within tolerance but the largest rescaled.
        snapshot.scores = Quantised::new(&[0.02, -0.01, 0.06]);
        let shown = snapshot.output(&real.params).unwrap();
        let verdict = compare_recomputed(&shown.attribution, &real, Quantised::RESOLUTION);
        assert!(matches!(verdict, Recomputed::Differs { .. }), "{verdict:?}");
        // An honest snapshot is the same result.
        let honest = Snapshot::of(&real).output(&real.params).unwrap();
        let verdict = compare_recomputed(&honest.attribution, &real, Quantised::RESOLUTION);
        assert!(matches!(verdict, Recomputed::Same { .. }), "{verdict:?}");
    }

    /// A result made on the CPU and recomputed on a GPU is judged at the GPU's precision, and a
    /// snapshot that claims the GPU widens the tolerance no further than that.
    #[test]
    fn the_tolerance_is_the_coarser_backends() {
        let cpu = attribution(&[1.0, -0.5, 0.25]);
        let mut gpu = attribution(&[1.0, -0.5, 0.2505]);
        gpu.backend = BackendKind::Gpu;
        let verdict = compare_recomputed(&cpu, &gpu, 0.0);
        assert!(matches!(verdict, Recomputed::Same { tolerance, .. } if tolerance == 1e-3));
        let on_cpu_too = attribution(&[1.0, -0.5, 0.2505]);
        assert!(matches!(compare_recomputed(&cpu, &on_cpu_too, 0.0), Recomputed::Differs { .. }));
        let mut claims_gpu = attribution(&[1.0, -0.5, 0.26]);
        claims_gpu.backend = BackendKind::Gpu;
        assert!(matches!(compare_recomputed(&claims_gpu, &cpu, 0.0), Recomputed::Differs { .. }));
    }

    #[test]
    fn prefixes_never_cut_a_character() {
        assert_eq!(prefix("ab€d", 3), "ab€");
        assert_eq!(prefix("€€", 12), "€€");
        assert_eq!(prefix("", 4), "");
    }
}

//! Contrastive targets and continuations are built from ordinary attributions: a contrastive
//! attribution by a method linear in f is the difference of the target's and the foil's, and
//! each continuation row is the attribution of one token given the text before it.

mod common;
use candle_core::DType;
use salient::engine::api::continuation::attribute_continuation;
use salient::engine::runtime::ready::now;
use salient::engine::{attribute, EngineError, Request, TargetChoice, TargetKind, TargetSpec};
use salient::engine::{Backend, RunContext};

const PREFIX: &str = "The capital of France is";
const CONTINUATION: &str = " Paris. It is";

fn largest_abs(values: &[f32]) -> f64 {
    values.iter().fold(0f64, |m, v| m.max(v.abs() as f64))
}

/// The largest |a − b| over the largest |b|.
fn relative_difference(a: &[f32], b: &[f32]) -> f64 {
    max_difference(a, b) / largest_abs(b)
}

fn max_difference(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (*x as f64 - *y as f64).abs()).fold(0.0, f64::max)
}

#[test]
fn a_contrastive_attribution_is_the_difference_of_two_attributions() {
    // f64: the two sides differ only by rounding. Scores are stored as f32 and the difference is
    // taken in f32, so the bound is a few f32 ulps (1.2e-7) of the largest single-target score.
    // A foil's term counted with the wrong sign, or dropped, changes scores by their own size.
    const TOLERANCE: f64 = 1e-6;
    let model = common::load_model(DType::F64);
    let run = |token: &str, foil: Option<&str>, kind| {
        let target = TargetSpec {
            token: TargetChoice::Text(token.into()),
            kind,
            foil: foil.map(|f| TargetChoice::Text(f.into())),
        };
        attribute(
            &model,
            &Request { target, ..Request::new(PREFIX, "grad_x_input") },
            &RunContext::default(),
        )
        .unwrap()
    };
    for kind in [TargetKind::Prob, TargetKind::Logit] {
        let contrastive = run(" Paris", Some(" London"), kind);
        let (paris, london) = (run(" Paris", None, kind), run(" London", None, kind));
        assert_eq!(contrastive.foil.as_ref().map(|f| f.text.as_str()), Some(" London"));
        assert!(
            (contrastive.value - (paris.value - london.value)).abs() < 1e-12,
            "{kind:?}: f(x) is not the difference"
        );
        let difference: Vec<f32> =
            paris.scores.iter().zip(&london.scores).map(|(p, l)| p - l).collect();
        let scale = largest_abs(&paris.scores).max(largest_abs(&london.scores));
        let error = max_difference(&contrastive.scores, &difference) / scale;
        eprintln!(
            "{kind:?}: contrastive {:?}, difference {difference:?}, relative error {error:.2e}",
            contrastive.scores
        );
        assert!(error < TOLERANCE, "{kind:?}: relative error {error:.2e}");
        // The check has teeth: the target's scores alone are far from the contrastive ones.
        assert!(
            relative_difference(&contrastive.scores, &paris.scores) > 100.0 * TOLERANCE,
            "{kind:?}"
        );
    }
}

#[test]
fn continuation_rows_are_attributions_of_each_token_given_the_text_before_it() {
    let model = common::load_model(DType::F32);
    let kind = TargetKind::LogProb;
    let request = Request {
        continuation: Some(CONTINUATION.into()),
        target: TargetSpec { kind, ..TargetSpec::top() },
        max_tokens: Some(9), // exactly the 5 + 4 tokens
        ..Request::new(PREFIX, "grad_x_input")
    };
    let result = attribute(&model, &request, &RunContext::default()).unwrap();
    let c = result.continuation.as_ref().expect("asked for");
    let prefix = model.tokenizer.tokenize(PREFIX).unwrap();
    let continuation = model.tokenizer.tokenize_continuation(CONTINUATION).unwrap();
    let shown: Vec<&str> = continuation.iter().map(|t| t.text.as_str()).collect();
    assert_eq!(shown, [" Paris", ".", " It", " is"]);
    assert_eq!(c.output_start, prefix.len());
    assert_eq!(c.tokens, [prefix.clone(), continuation.clone()].concat());
    assert_eq!(c.rows.len(), continuation.len());

    let mut text = PREFIX.to_string();
    for (j, (row, token)) in c.rows.iter().zip(&continuation).enumerate() {
        // The same question asked on its own: the prefix and the tokens before j as text.
        let target = TargetSpec { token: TargetChoice::Id(token.id), kind, foil: None };
        let alone = attribute(
            &model,
            &Request { target, ..Request::new(text.clone(), "grad_x_input") },
            &RunContext::default(),
        )
        .unwrap();
        assert_eq!(
            alone.tokens,
            c.tokens[..c.output_start + j],
            "row {j}: the text re-tokenizes differently"
        );
        assert_eq!(row.target, alone.target, "row {j}");
        // Same tokens, same computation: equal up to rounding (1e-6 of the largest score).
        let error = relative_difference(&row.scores, &alone.scores);
        eprintln!(
            "row {j} {:?} p = {:.4}: relative difference {error:.1e}",
            row.target.text, row.target.prob
        );
        assert!(error < 1e-6, "row {j}: {:?} vs {:?}", row.scores, alone.scores);
        text.push_str(&token.text);
    }
}

#[test]
fn max_tokens_bounds_the_prefix_and_the_continuation_together() {
    let model = common::load_model(DType::F32);
    let continue_with = |method: &str, continuation: &str, max_tokens| {
        let request = Request { max_tokens, ..Request::new(PREFIX, method) };
        let context = RunContext::default();
        now(attribute_continuation(Backend::Cpu, &model, &request, continuation, &context))
    };
    let result = continue_with("saliency", CONTINUATION, Some(8));
    assert!(
        matches!(result, Err(EngineError::TextTooLong { tokens: 9, max: 8, .. })),
        "{:?}",
        result.err()
    );
    let result = continue_with("saliency", "", None);
    assert!(matches!(result, Err(EngineError::InvalidRequest(_))), "{:?}", result.err());
    let result = continue_with("tea-leaves", CONTINUATION, None);
    assert!(matches!(result, Err(EngineError::UnknownMethod { .. })), "{:?}", result.err());
}

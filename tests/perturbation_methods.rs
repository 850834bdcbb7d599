//! KernelSHAP, LIME and Shapley value sampling against values computed apart from the engine: on
//! tiny random llama, qwen2 and gpt2 models, exact Shapley values by enumerating every coalition
//! of the plain-f64 reference forward pass. KernelSHAP given every coalition must equal them;
//! the sampled estimates must fall within their own standard errors of them, which checks the
//! errors as much as the scores.

mod common;
use candle_core::DType;
use common::gguf_builder::{tiny_model, Family, TinyConfig, TinyModel};
use common::reference::{self, EXACT};
use common::AttributeNow;
use salient::engine::attribution::grouping::Granularity;
use salient::engine::attribution::methods::{by_name, MethodParams, Scores};
use salient::engine::runtime::ready::now;
use salient::engine::{Baseline, EngineError, Model, Problem, RunContext, TargetSpec};

const FAMILIES: [Family; 3] = [Family::Llama, Family::Qwen2, Family::Gpt2];
/// Few enough tokens for 2ⁿ coalitions, and two words of more than one token.
const TEXT: &str = "the cat sat";

fn config(family: Family) -> TinyConfig {
    let kv_heads = if family == Family::Gpt2 { 4 } else { 2 };
    TinyConfig { layers: 2, width: 16, heads: 4, kv_heads, hidden: 32, context_length: 24, seed: 5 }
}

/// A tiny model of `family` (f64, so the engine's rounding stays far below the tolerances) and
/// the problem of [`TEXT`] on it.
fn setup(family: Family) -> (TinyModel, Model) {
    let tiny = tiny_model(family, config(family));
    let model = Model::load_with_dtype(tiny.bytes.clone(), DType::F64).unwrap();
    (tiny, model)
}

fn problem(model: &Model) -> Problem<'_> {
    now(Problem::new(model, TEXT, &TargetSpec::top(), None, &RunContext::default())).unwrap()
}

/// p(target) of the reference forward pass with the tokens outside `kept` replaced by the
/// padding token's embedding row.
fn reference_value(tiny: &TinyModel, problem: &Problem, kept: &[bool]) -> f64 {
    let width = tiny.config.width;
    let eot = tiny.end_of_text_id() as usize;
    let pad = tiny.weight("token_embd.weight")[eot * width..(eot + 1) * width].to_vec();
    let embeds: Vec<Vec<f64>> = problem
        .input()
        .to_vec2::<f64>()
        .unwrap()
        .into_iter()
        .zip(kept)
        .map(|(row, &k)| if k { row } else { pad.clone() })
        .collect();
    let logits =
        reference::forward(tiny.family, &tiny.config, &tiny.weights(), &embeds, EXACT).last_logits;
    let max = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let total: f64 = logits.iter().map(|l| (l - max).exp()).sum();
    (logits[problem.target() as usize] - max).exp() / total
}

/// Exact Shapley values of the game whose players are `groups` of token positions, by
/// enumerating every coalition: φᵢ = Σ_S |S|! (m − |S| − 1)! / m! · (v(S ∪ i) − v(S)).
fn exact_shapley(tiny: &TinyModel, problem: &Problem, groups: &[Vec<usize>]) -> Vec<f64> {
    let m = groups.len();
    let value_of = |bits: usize| {
        let mut kept = vec![false; problem.len()];
        for (g, positions) in groups.iter().enumerate() {
            if bits >> g & 1 == 1 {
                positions.iter().for_each(|&p| kept[p] = true);
            }
        }
        reference_value(tiny, problem, &kept)
    };
    let values: Vec<f64> = (0..1usize << m).map(value_of).collect();
    let factorial = |n: usize| (1..=n).map(|k| k as f64).product::<f64>();
    (0..m)
        .map(|i| {
            (0..1usize << m)
                .filter(|s| s >> i & 1 == 0)
                .map(|s| {
                    let size = s.count_ones() as usize;
                    let weight = factorial(size) * factorial(m - size - 1) / factorial(m);
                    weight * (values[s | 1 << i] - values[s])
                })
                .sum()
        })
        .collect()
}

fn run(problem: &Problem, method: &str, params: &MethodParams) -> Scores {
    by_name(method).unwrap().attribute_now(problem, params).unwrap()
}

/// Per-feature scores from per-token ones: a feature's tokens share its score evenly.
fn per_group(scores: &[f32], groups: &[Vec<usize>]) -> Vec<f64> {
    groups.iter().map(|g| g.iter().map(|&p| scores[p] as f64).sum()).collect()
}

fn token_groups(n: usize) -> Vec<Vec<usize>> {
    (0..n).map(|i| vec![i]).collect()
}

/// The words of the problem's text as groups of positions (from the engine's grouping, which
/// tests/grouping.rs checks on its own).
fn word_groups(problem: &Problem) -> Vec<Vec<usize>> {
    let zeros = vec![0.0; problem.len()];
    salient::engine::attribution::grouping::group(&problem.tokens, &zeros, Granularity::Word)
        .iter()
        .map(|g| (g.first..=g.last).collect())
        .collect()
}

#[test]
fn kernel_shap_with_every_coalition_equals_exact_shapley_values() {
    for family in FAMILIES {
        let (tiny, model) = setup(family);
        let problem = problem(&model);
        let n = problem.len();
        assert!((3..=9).contains(&n), "{family:?}: {} tokens", n);
        for (features, groups) in
            [(Granularity::Token, token_groups(n)), (Granularity::Word, word_groups(&problem))]
        {
            let exact = exact_shapley(&tiny, &problem, &groups);
            let params = MethodParams { features, budget: 1 << n, ..MethodParams::default() };
            let scores = run(&problem, "kernel_shap", &params);
            let got = per_group(&scores.values, &groups);
            let scale = exact.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            let error = got.iter().zip(&exact).fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
            println!("{family:?} {features:?}: max |φ| {scale:.3e}, max |error| {error:.2e}");
            assert!(scale > 1e-4 && error < 1e-5 * scale, "{got:?} vs {exact:?}");
            // Exact: no sampling error, and the scores add up to v(all) − v(none).
            assert!(scores.standard_errors.unwrap().iter().all(|e| *e == 0.0));
            assert!(scores.completeness_error.unwrap() < 1e-6);
            assert_eq!(scores.evaluations, Some((1 << groups.len()) - 1));
            // A word's tokens share its score evenly.
            for group in &groups {
                assert!(group.iter().all(|&p| scores.values[p] == scores.values[group[0]]));
            }
        }
    }
}

/// |estimate − exact| ≤ 4 standard errors (+ rounding) for every feature, and the errors are not
/// vacuous: none is larger than the largest |φ|.
fn assert_within_errors(what: &str, scores: &Scores, exact: &[f64]) {
    let errors = scores.standard_errors.as_ref().unwrap();
    let scale = exact.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    for (i, ((got, want), error)) in scores.values.iter().zip(exact).zip(errors).enumerate() {
        let (got, error) = (*got as f64, *error as f64);
        println!("{what} {i}: {got:+.5} vs {want:+.5} (± {error:.5})");
        assert!(error > 0.0 && error < scale, "{what} {i}: error {error} vs scale {scale}");
        assert!((got - want).abs() <= 4.0 * error + 1e-9, "{what} {i}: {got} vs {want} ± {error}");
    }
}

#[test]
fn sampled_shapley_estimates_fall_within_their_standard_errors() {
    for family in FAMILIES {
        let (tiny, model) = setup(family);
        let problem = problem(&model);
        let exact = exact_shapley(&tiny, &problem, &token_groups(problem.len()));
        // Fewer coalitions than there are, so KernelSHAP samples.
        let budget = (1 << problem.len()) / 2;
        for method in ["kernel_shap", "shapley_sampling"] {
            let params = MethodParams { budget, seed: 3, ..MethodParams::default() };
            let scores = run(&problem, method, &params);
            assert_within_errors(&format!("{family:?} {method}"), &scores, &exact);
            // Both impose Σφ = v(all) − v(none).
            assert!(scores.completeness_error.unwrap() < 1e-6, "{method}");
            assert!(scores.evaluations.unwrap() <= budget);
            // Another seed draws other coalitions.
            let reseeded = run(&problem, method, &MethodParams { seed: 4, ..params });
            assert_ne!(reseeded.values, scores.values, "{method}");
        }
    }
}

#[test]
fn lime_is_a_local_linear_fit_whose_errors_cover_another_seed() {
    let (_, model) = setup(Family::Llama);
    let problem = problem(&model);
    let params = MethodParams { budget: 400, seed: 1, ..MethodParams::default() };
    let a = run(&problem, "lime", &params);
    let b = run(&problem, "lime", &MethodParams { seed: 2, ..params.clone() });
    assert_eq!(a.evaluations, Some(400));
    assert_eq!(a.completeness_error, None, "LIME claims no efficiency");
    let (ea, eb) = (a.standard_errors.unwrap(), b.standard_errors.unwrap());
    for i in 0..problem.len() {
        let spread = ((ea[i] * ea[i] + eb[i] * eb[i]) as f64).sqrt();
        let gap = (a.values[i] - b.values[i]).abs() as f64;
        assert!(spread > 0.0 && gap <= 4.0 * spread, "token {i}: {gap} vs ± {spread}");
    }
    assert_ne!(a.values, b.values);
    // The same seed draws the same coalitions.
    assert_eq!(run(&problem, "lime", &params).values, a.values);
}

#[test]
fn a_budget_too_small_says_how_large_it_must_be() {
    let (_, model) = setup(Family::Llama);
    let problem = problem(&model);
    let n = problem.len();
    for method in ["kernel_shap", "shapley_sampling"] {
        let params =
            MethodParams { budget: n, baseline: Baseline::Zero, ..MethodParams::default() };
        let error = by_name(method).unwrap().attribute_now(&problem, &params).unwrap_err();
        let EngineError::InvalidRequest(message) = error else { panic!("{error:?}") };
        assert!(message.contains("raise the budget or take words"), "{message}");
    }
    for budget in [0, 1, 16385] {
        let params = MethodParams { budget, ..MethodParams::default() };
        let error = by_name("lime").unwrap().attribute_now(&problem, &params).unwrap_err();
        assert!(matches!(error, EngineError::InvalidRequest(_)), "{budget}: {error:?}");
    }
}

//! Gradient × input, integrated gradients and SmoothGrad compute what they claim: against finite
//! differences of the model's own function (f64), against the completeness axiom (f32), and
//! against saliency when SmoothGrad's noise is off.

mod common;
use candle_core::{DType, Tensor};
use common::AttributeNow;
use salient::engine::attribution::methods::{self, AttributionMethod, Scores};
use salient::engine::attribution::problem::Problem;
use salient::engine::runtime::ready::now;
use salient::engine::RunContext;
use salient::engine::{Baseline, EngineError, MethodParams, TargetSpec};
use std::time::Instant;

/// Central-difference step, as in tests/gradients.rs (a token embedding has norm ≈ 1).
const STEP: f64 = 1e-4;
/// Gradients checked in f64: truncation error is O(STEP²) ≈ 1e-8 of the third derivative, and
/// rounding (1e-16 / STEP) is far below, so |FD − analytic| must be below 1e-8 of its scale.
const F64_TOLERANCE: f64 = 1e-8;
/// Scores are returned as f32: rounding alone moves a score by up to 2⁻²⁴ ≈ 6e-8 of its size (and
/// a sum of scores by 6e-8 of Σ|scoreᵢ|, which Cauchy–Schwarz bounds by the same scale).
const F32_SCORE_TOLERANCE: f64 = 1e-7;

const PROMPTS: [&str; 3] = [
    "The capital of France is",
    "The Eiffel Tower is located in the city of",
    "Water boils at a temperature of 100 degrees",
];

fn method(name: &str) -> &'static dyn AttributionMethod {
    methods::by_name(name).unwrap()
}

fn norm(t: &Tensor) -> f64 {
    t.to_dtype(DType::F64)
        .unwrap()
        .sqr()
        .unwrap()
        .sum_all()
        .unwrap()
        .sqrt()
        .unwrap()
        .to_scalar::<f64>()
        .unwrap()
}

fn dot(a: &Tensor, b: &Tensor) -> f64 {
    (a * b).unwrap().sum_all().unwrap().to_dtype(DType::F64).unwrap().to_scalar::<f64>().unwrap()
}

/// d/dt f(at + t · direction) at t = 0, by central differences with step `step`.
fn directional_derivative(problem: &Problem, at: &Tensor, direction: &Tensor, step: f64) -> f64 {
    let offset = (direction * step).unwrap();
    let f = now(problem.values(&[(at + &offset).unwrap(), (at - &offset).unwrap()])).unwrap();
    (f[0] - f[1]) / (2.0 * step)
}

/// `x` with every row but `row` zeroed.
fn only_row(x: &Tensor, row: usize) -> Tensor {
    let mask: Vec<f64> = (0..x.dim(0).unwrap()).map(|i| if i == row { 1.0 } else { 0.0 }).collect();
    let mask = Tensor::from_vec(mask, (x.dim(0).unwrap(), 1), x.device())
        .unwrap()
        .to_dtype(x.dtype())
        .unwrap();
    x.broadcast_mul(&mask).unwrap()
}

fn show(errors: &[f64]) -> String {
    errors.iter().map(|e| format!("{e:.2e}")).collect::<Vec<_>>().join(" ")
}

fn attribute(problem: &Problem, name: &str, params: &MethodParams) -> Scores {
    method(name).attribute_now(problem, params).unwrap()
}

/// Relative errors of gradient × input against finite differences along x (for Σᵢ scoreᵢ) and
/// along each token's own embedding (for scoreᵢ), each relative to ‖∇f‖‖direction‖, the largest
/// the directional derivative can be.
fn grad_x_input_errors(problem: &Problem, scores: &[f32]) -> (f64, Vec<f64>) {
    let (x, gradient) = (problem.input(), now(problem.input_gradient()).unwrap());
    let total: f64 = scores.iter().map(|s| *s as f64).sum();
    let along_x = directional_derivative(problem, &x, &x, STEP);
    println!("Σ scores {total:+.10e}  FD along x {along_x:+.10e}");
    let total_error = (total - along_x).abs() / (norm(&gradient) * norm(&x));
    let token_errors = scores
        .iter()
        .enumerate()
        .map(|(i, score)| {
            let direction = only_row(&x, i);
            let finite_difference = directional_derivative(problem, &x, &direction, STEP);
            println!("token {i}: score {score:+.10e}  FD {finite_difference:+.10e}");
            (*score as f64 - finite_difference).abs()
                / (norm(&only_row(&gradient, i)) * norm(&direction))
        })
        .collect();
    (total_error, token_errors)
}

#[test]
fn grad_x_input_is_the_derivative_along_the_input() {
    let model = common::load_model(DType::F64);
    let problem =
        now(Problem::new(&model, PROMPTS[0], &TargetSpec::top(), None, &RunContext::default()))
            .unwrap();
    assert!(method("grad_x_input").signed());
    let scores = attribute(&problem, "grad_x_input", &MethodParams::default()).values;
    assert_eq!(scores.len(), problem.len());

    let (total_error, token_errors) = grad_x_input_errors(&problem, &scores);
    eprintln!(
        "grad × input: relative error of Σ scores {total_error:.2e}, per token {}",
        show(&token_errors)
    );
    assert!(total_error < F32_SCORE_TOLERANCE, "Σ scores: relative error {total_error:e}");
    assert!(
        token_errors.iter().all(|e| *e < F32_SCORE_TOLERANCE),
        "per token: {}",
        show(&token_errors)
    );

    // The check can fail: scores off by 1% (a wrong row, scale or term would be far worse) are caught.
    let wrong: Vec<f32> = scores.iter().map(|s| s * 1.01).collect();
    let (total_error, token_errors) = grad_x_input_errors(&problem, &wrong);
    assert!(
        total_error > F32_SCORE_TOLERANCE,
        "a 1% error in Σ scores went unnoticed: {total_error:e}"
    );
    assert!(
        token_errors.iter().all(|e| *e > F32_SCORE_TOLERANCE),
        "a 1% error went unnoticed: {}",
        show(&token_errors)
    );
}

/// The integrand of integrated gradients: at points x' + α (x − x') of the path, the gradients
/// `Problem::gradients` returns (one batch) are those of f at that very point.
#[test]
fn gradients_along_the_path_match_finite_differences() {
    let model = common::load_model(DType::F64);
    let problem =
        now(Problem::new(&model, PROMPTS[0], &TargetSpec::top(), None, &RunContext::default()))
            .unwrap();
    let mut rng = common::Rng::new(11);
    let x = problem.input();
    for baseline in Baseline::ALL {
        let start = problem.baseline(baseline).unwrap();
        let alphas = [0.1, 0.5, 0.9];
        let points: Vec<Tensor> = alphas
            .iter()
            .map(|a| (&start + ((&x - &start).unwrap() * *a).unwrap()).unwrap())
            .collect();
        let mut gradients = Vec::new();
        now(problem.gradients(&points, |_, _, g| {
            gradients.push(g.clone());
            Ok(())
        }))
        .unwrap();
        for (k, (point, alpha)) in points.iter().zip(alphas).enumerate() {
            let v: Vec<f64> = (0..x.elem_count()).map(|_| rng.normal()).collect();
            let v = Tensor::from_vec(v, x.shape(), x.device()).unwrap();
            let v = (&v / norm(&v)).unwrap();
            // Near the zero baseline f varies on the scale of the shrunken embeddings, so the step
            // shrinks with them to keep the truncation error O(STEP²) relative.
            let step = STEP * norm(point) / norm(&x);
            let finite_difference = directional_derivative(&problem, point, &v, step);
            let error = |g: &Tensor| (dot(g, &v) - finite_difference).abs() / norm(g);
            let own = error(&gradients[k]);
            eprintln!("{} baseline, α = {alpha}: relative error {own:.2e}", baseline.name());
            assert!(
                own < F64_TOLERANCE,
                "{} baseline, α = {alpha}: relative error {own:e}",
                baseline.name()
            );
            // The check can fail: the gradient at the next point of the path does not pass for this one.
            let other = error(&gradients[(k + 1) % points.len()]);
            assert!(
                other > F64_TOLERANCE,
                "{} baseline, α = {alpha}: another point's gradient passed",
                baseline.name()
            );
        }
    }
}

/// f(x) − f(x').
fn change_from(problem: &Problem, baseline: Baseline) -> f64 {
    problem.input_value().unwrap()
        - now(problem.values(&[problem.baseline(baseline).unwrap()])).unwrap()[0]
}

/// |Σ scores − (f(x) − f(x'))| / |f(x) − f(x')|, recomputed here from the scores.
fn completeness_error(scores: &[f32], change: f64) -> f64 {
    let total: f64 = scores.iter().map(|s| *s as f64).sum();
    (total - change).abs() / change.abs()
}

/// Completeness: with a budget of 32 gradients the adaptive rule makes the scores add up to
/// f(x) − f(x') within 1% (the bar the integrated-gradients paper sets) on the f32 model, for
/// several prompts. "1, 2, 3, 4, 5,"'s path jumps within Δα = 0.01 (its derivative swings from
/// −2.7 to +13 there, matching finite differences in f64): a 64-node Gauss–Legendre rule, the
/// engine's rule before, missed by 20%; the adaptive rule with 64 gradients must stay under 2%
/// (it gives 0.84%, and 11% with 32).
#[test]
fn integrated_gradients_add_up_to_the_change_in_f() {
    let model = common::load_model(DType::F32);
    let ig = method("integrated_gradients");
    assert!(ig.signed());
    for (p, prompt) in PROMPTS.iter().chain(&["1, 2, 3, 4, 5,"]).enumerate() {
        let problem =
            now(Problem::new(&model, prompt, &TargetSpec::top(), None, &RunContext::default()))
                .unwrap();
        let step_counts: &[usize] = match p {
            0 => &[8, 16, 32],
            3 => &[64],
            _ => &[32],
        };
        for &steps in step_counts {
            let params = MethodParams { steps, ..MethodParams::default() };
            let started = Instant::now();
            let scores = ig.attribute_now(&problem, &params).unwrap();
            let elapsed = started.elapsed();
            let change = change_from(&problem, Baseline::Pad);
            let error = completeness_error(&scores.values, change);
            let reported = scores.completeness_error.unwrap();
            let gradients = scores.gradients.unwrap();
            eprintln!(
                "IG {prompt:?} ({} tokens), {steps} steps: completeness error {error:.2e} with {gradients} gradients in {elapsed:.2?}",
                problem.len()
            );
            assert_eq!(scores.values.len(), problem.len());
            assert!((3..=steps).contains(&gradients), "{gradients} gradients for {steps} steps");
            // The reported error is this same quantity, computed before the scores were rounded to
            // f32, which moves their sum by at most 2⁻²⁴ Σ|scoreᵢ| (and f32::EPSILON is 2⁻²³).
            let rounding = f32::EPSILON as f64
                * scores.values.iter().map(|s| s.abs() as f64).sum::<f64>()
                / change.abs();
            assert!(
                (reported - error).abs() <= rounding,
                "reported {reported:e}, recomputed {error:e}"
            );
            match p {
                3 => assert!(
                    error < 0.02,
                    "{prompt:?}: completeness error {error:e} at {steps} steps"
                ),
                _ if steps == 32 => {
                    assert!(error < 0.01, "{prompt:?}: completeness error {error:e} at 32 steps")
                }
                _ => {}
            }
        }
    }
}

/// The zero baseline's path starts where every embedding is zero and RMSNorm's gradient is 1/√eps:
/// large but finite, and the adaptive rule does evaluate it.
#[test]
fn integrated_gradients_from_the_zero_baseline_are_finite() {
    let model = common::load_model(DType::F32);
    let problem =
        now(Problem::new(&model, PROMPTS[1], &TargetSpec::top(), None, &RunContext::default()))
            .unwrap();
    let params = MethodParams { steps: 16, baseline: Baseline::Zero, ..MethodParams::default() };
    let scores = method("integrated_gradients").attribute_now(&problem, &params).unwrap();
    let error = completeness_error(&scores.values, change_from(&problem, Baseline::Zero));
    eprintln!(
        "IG zero baseline, 16 steps: scores {:?}, completeness error {error:.2e}",
        scores.values
    );
    assert!(scores.values.iter().all(|s| s.is_finite()), "{:?}", scores.values);
    assert!(scores.completeness_error.is_some_and(f64::is_finite));
}

#[test]
fn integrated_gradients_refuse_bad_step_counts() {
    let model = common::load_model(DType::F32);
    let problem =
        now(Problem::new(&model, PROMPTS[0], &TargetSpec::top(), None, &RunContext::default()))
            .unwrap();
    for steps in [0, 3, 1025] {
        let params = MethodParams { steps, ..MethodParams::default() };
        match method("integrated_gradients").attribute_now(&problem, &params) {
            Err(EngineError::InvalidRequest(message)) => {
                assert!(message.contains("steps"), "{message}")
            }
            other => panic!("{steps} steps: {other:?}"),
        }
    }
}

#[test]
fn smoothgrad_is_seeded_non_negative_and_saliency_without_noise() {
    let model = common::load_model(DType::F32);
    let problem =
        now(Problem::new(&model, PROMPTS[1], &TargetSpec::top(), None, &RunContext::default()))
            .unwrap();
    let smoothgrad = method("smoothgrad");
    assert!(!smoothgrad.signed());
    let run = |params: &MethodParams| smoothgrad.attribute_now(&problem, params).unwrap().values;

    let params = MethodParams::default(); // 16 samples, σ = 0.1, seed 0
    let started = Instant::now();
    let first = run(&params);
    eprintln!(
        "SmoothGrad ({} tokens, {} samples) in {:.2?}: {first:?}",
        problem.len(),
        params.samples,
        started.elapsed()
    );
    assert_eq!(first.len(), problem.len());
    assert!(first.iter().all(|s| s.is_finite() && *s >= 0.0), "{first:?}");
    assert_eq!(run(&params), first, "the same seed gave different scores");
    let reseeded = run(&MethodParams { seed: 1, ..params.clone() });
    assert_ne!(reseeded, first, "another seed gave the same scores");

    // Without noise every copy is the input itself, so the mean is the saliency map. The copies
    // go through a batched pass, whose f32 products gemm blocks differently from the
    // single-sequence pass saliency uses, so their sums round in another order: allow 1e-4 of the
    // largest score (measured: 2.5e-5; the noisy scores below differ by about 5e-2).
    let saliency = method("saliency").attribute_now(&problem, &params).unwrap().values;
    let largest = saliency.iter().fold(0.0f32, |m, s| m.max(*s));
    let difference =
        |a: &[f32]| a.iter().zip(&saliency).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    let noiseless = run(&MethodParams { sigma: 0.0, samples: 4, ..params.clone() });
    eprintln!(
        "SmoothGrad σ = 0 vs saliency: largest difference {:.2e} of {largest:.2e}",
        difference(&noiseless)
    );
    assert!(
        difference(&noiseless) <= 1e-4 * largest,
        "σ = 0: {noiseless:?} vs saliency {saliency:?}"
    );
    // The comparison can fail: with noise the scores are not the saliency map.
    assert!(difference(&first) > 1e-4 * largest, "σ = 0.1 gave the saliency map");
}

#[test]
fn smoothgrad_refuses_bad_settings() {
    let model = common::load_model(DType::F32);
    let problem =
        now(Problem::new(&model, PROMPTS[0], &TargetSpec::top(), None, &RunContext::default()))
            .unwrap();
    let bad = [
        MethodParams { samples: 0, ..MethodParams::default() },
        MethodParams { samples: 257, ..MethodParams::default() },
        MethodParams { sigma: -0.1, ..MethodParams::default() },
        MethodParams { sigma: f32::NAN, ..MethodParams::default() },
        MethodParams { sigma: f32::INFINITY, ..MethodParams::default() },
    ];
    for params in bad {
        match method("smoothgrad").attribute_now(&problem, &params) {
            Err(EngineError::InvalidRequest(_)) => {}
            other => panic!("{params:?}: {other:?}"),
        }
    }
}

//! The input gradient is the gradient of exactly the function the forward pass computes: central
//! finite differences along random directions agree with it, in f64 where rounding cannot hide
//! a wrong term. And saliency is what it claims to be.

mod common;
use candle_core::{DType, Tensor};
use salient::engine::attribution::problem::Problem;
use salient::engine::runtime::ready::now;
use salient::engine::RunContext;
use salient::engine::{attribute, Model, Request, TargetChoice, TargetSpec};

/// Central-difference step (the input embedding vector has norm ≈ 1 per token).
const STEP: f64 = 1e-4;
/// |FD − ∇f·v| must be below this fraction of |∇f|·|v| (truncation error is O(STEP²)).
const TOLERANCE: f64 = 1e-8;

/// Relative errors of the gradient `grad` against central differences of p(target) along
/// `directions` random unit directions.
fn directional_errors(problem: &Problem, grad: &Tensor, directions: usize, seed: u64) -> Vec<f64> {
    let mut rng = common::Rng::new(seed);
    let x = problem.input();
    let grad_norm =
        grad.sqr().unwrap().sum_all().unwrap().sqrt().unwrap().to_scalar::<f64>().unwrap();
    (0..directions)
        .map(|_| {
            let v: Vec<f64> = (0..x.elem_count()).map(|_| rng.normal()).collect();
            let v = Tensor::from_vec(v, x.shape(), x.device()).unwrap();
            let v = v.broadcast_div(&v.sqr().unwrap().sum_all().unwrap().sqrt().unwrap()).unwrap();
            let plus = (&x + (&v * STEP).unwrap()).unwrap();
            let minus = (&x - (&v * STEP).unwrap()).unwrap();
            let f = now(problem.values(&[plus, minus])).unwrap();
            let finite_difference = (f[0] - f[1]) / (2.0 * STEP);
            let analytic = (grad * &v).unwrap().sum_all().unwrap().to_scalar::<f64>().unwrap();
            println!("FD {finite_difference:+.10e}  analytic {analytic:+.10e}");
            (finite_difference - analytic).abs() / grad_norm
        })
        .collect()
}

#[test]
fn input_gradient_matches_finite_differences() {
    let model = common::load_model(DType::F64);
    let problem = now(Problem::new(
        &model,
        "The capital of France is",
        &TargetSpec::top(),
        None,
        &RunContext::default(),
    ))
    .unwrap();
    let grad = now(problem.input_gradient()).unwrap();
    let errors = directional_errors(&problem, &grad, 4, 7);
    println!("relative errors {errors:?}");
    assert!(errors.iter().all(|e| *e < TOLERANCE), "relative errors {errors:?} ≥ {TOLERANCE}");

    // The check can fail: a gradient off by 1% (as a missing or extra term would make it) is caught.
    let wrong = (&grad * 1.01).unwrap();
    let errors = directional_errors(&problem, &wrong, 4, 7);
    assert!(errors.iter().any(|e| *e > TOLERANCE), "a 1% error went unnoticed: {errors:?}");
}

#[test]
fn f64_and_f32_models_compute_the_same_function() {
    let f32_model = common::load_model(DType::F32);
    let f64_model = Model::load_with_dtype(common::model_bytes(), DType::F64).unwrap();
    let a = now(Problem::new(
        &f32_model,
        "The capital of France is",
        &TargetSpec::of(TargetChoice::Id(7042)),
        None,
        &RunContext::default(),
    ))
    .unwrap();
    let b = now(Problem::new(
        &f64_model,
        "The capital of France is",
        &TargetSpec::of(TargetChoice::Id(7042)),
        None,
        &RunContext::default(),
    ))
    .unwrap();
    let (pa, pb) = (a.probs[7042] as f64, b.probs[7042] as f64);
    assert!((pa - pb).abs() < 1e-4, "p(Paris): f32 {pa} vs f64 {pb}");
}

#[test]
fn saliency_is_one_non_negative_score_per_token() {
    let model = common::load_model(DType::F32);
    let text = "The Eiffel Tower is located in the city of";
    let request = Request::new(text, "saliency");
    let result = attribute(&model, &request, &RunContext::default()).unwrap();
    assert_eq!(result.scores.len(), result.tokens.len());
    assert_eq!(result.tokens.len(), 10);
    assert!(result.scores.iter().all(|s| s.is_finite() && *s >= 0.0), "{:?}", result.scores);
    assert!(result.scores.iter().any(|s| *s > 0.0));
    assert!(!result.signed);

    // Saliency is the L2 norm of the gradient rows.
    let problem =
        now(Problem::new(&model, text, &TargetSpec::top(), None, &RunContext::default())).unwrap();
    let grad = now(problem.input_gradient()).unwrap().to_vec2::<f32>().unwrap();
    for (row, score) in grad.iter().zip(&result.scores) {
        let norm = row.iter().map(|g| g * g).sum::<f32>().sqrt();
        assert!((norm - score).abs() <= 1e-6 * norm.max(1e-12) + 1e-12, "{norm} vs {score}");
    }
}

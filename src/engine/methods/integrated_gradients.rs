//! Integrated gradients (Sundararajan et al. 2017): along the straight path x(α) = x' + α (x − x')
//! from the baseline x' to the input x, scoreᵢ = Σ_d (x − x')ᵢd · ∫₀¹ ∂ f / ∂ xᵢd (x(α)) dα.
//! The scores add up to f(x) − f(x') when the integral is exact; how far they miss is reported as
//! the completeness error. The integral is a Gauss–Legendre rule, which for a smooth integrand
//! converges much faster than the Riemann sums usually used, and has no node at either end.

use super::{AttributionMethod, MethodParams, Param, Scores};
use crate::engine::error::{EngineError, Result};
use crate::engine::problem::Problem;
use candle_core::{DType, Tensor, D};

/// More nodes than this buy no accuracy in f32 and only cost time.
const MAX_STEPS: usize = 1024;

pub struct IntegratedGradients;

impl AttributionMethod for IntegratedGradients {
    fn name(&self) -> &'static str {
        "integrated_gradients"
    }

    fn label(&self) -> &'static str {
        "Integrated gradients"
    }

    fn signed(&self) -> bool {
        true
    }

    fn params(&self) -> &'static [Param] {
        &[Param::Steps, Param::Baseline]
    }

    fn gradient_inputs(&self, params: &MethodParams) -> usize {
        params.steps
    }

    fn attribute(&self, problem: &Problem, params: &MethodParams) -> Result<Scores> {
        if !(1..=MAX_STEPS).contains(&params.steps) {
            return Err(EngineError::InvalidRequest(format!(
                "Integrated gradients needs between 1 and {MAX_STEPS} steps (got {}).",
                params.steps
            )));
        }
        let input = problem.input();
        let baseline = problem.baseline(params.baseline)?;
        let delta = (&input - &baseline)?;
        // Σₖ wₖ ∇f(x(αₖ)), accumulated in f64 so that many small terms do not round away.
        let mut integral = Tensor::zeros(input.shape(), DType::F64, input.device())?;
        for nodes in gauss_legendre(params.steps).chunks(problem.gradient_batch_rows()) {
            let points = nodes
                .iter()
                .map(|(alpha, _)| &baseline + (&delta * *alpha)?)
                .collect::<candle_core::Result<Vec<_>>>()?;
            problem.gradients(&points, |k, _, gradient| {
                integral = (&integral + (gradient.to_dtype(DType::F64)? * nodes[k].1)?)?;
                Ok(())
            })?;
        }
        let scores = (delta.to_dtype(DType::F64)? * integral)?.sum(D::Minus1)?.to_vec1::<f64>()?;

        let change = problem.input_value()? - problem.values(&[baseline])?[0];
        // A relative error of an exactly zero change is undefined; report none rather than ∞.
        let completeness_error = (change != 0.0).then(|| (scores.iter().sum::<f64>() - change).abs() / change.abs());
        Ok(Scores { values: scores.into_iter().map(|s| s as f32).collect(), completeness_error })
    }
}

/// The n-point Gauss–Legendre rule on [0, 1], as (node, weight) pairs in increasing node order:
/// exact for polynomials of degree below 2n, all nodes strictly inside (0, 1).
fn gauss_legendre(n: usize) -> Vec<(f64, f64)> {
    let mut rule = vec![(0.0, 0.0); n];
    for i in 0..n.div_ceil(2) {
        // Newton's method on Pₙ from the classic estimate of its (i+1)-th largest root on [−1, 1].
        let mut x = (std::f64::consts::PI * (i as f64 + 0.75) / (n as f64 + 0.5)).cos();
        for _ in 0..100 {
            let (p, dp) = legendre(n, x);
            let step = p / dp;
            x -= step;
            if step.abs() <= 4.0 * f64::EPSILON {
                break;
            }
        }
        let dp = legendre(n, x).1;
        // Weights on [−1, 1] are 2 / ((1 − x²) Pₙ'(x)²); mapping to [0, 1] halves them.
        let weight = 1.0 / ((1.0 - x * x) * dp * dp);
        rule[i] = ((1.0 - x) / 2.0, weight);
        rule[n - 1 - i] = ((1.0 + x) / 2.0, weight);
    }
    rule
}

/// Pₙ(x) and Pₙ'(x) for n ≥ 1, by Bonnet's recurrence.
fn legendre(n: usize, x: f64) -> (f64, f64) {
    let (mut previous, mut current) = (1.0, x);
    for k in 2..=n {
        let k = k as f64;
        let next = ((2.0 * k - 1.0) * x * current - (k - 1.0) * previous) / k;
        previous = current;
        current = next;
    }
    let derivative = n as f64 * (x * current - previous) / (x * x - 1.0);
    (current, derivative)
}

#[cfg(test)]
mod tests {
    use super::gauss_legendre;

    /// An n-point rule must integrate x^(2n−1) exactly (∫₀¹ = 1/(2n)) and x⁰ (weights sum to 1);
    /// a wrong root or weight breaks both by far more than the rounding tolerance of 1e-12.
    #[test]
    fn gauss_legendre_is_exact_to_degree_2n_minus_1() {
        for n in [1, 2, 3, 7, 8, 64, 1024] {
            let rule = gauss_legendre(n);
            assert!(rule.windows(2).all(|w| w[0].0 < w[1].0), "n = {n}: nodes not increasing");
            assert!(rule[0].0 > 0.0 && rule[n - 1].0 < 1.0, "n = {n}: a node at an end");
            let total: f64 = rule.iter().map(|(_, w)| w).sum();
            assert!((total - 1.0).abs() < 1e-12, "n = {n}: weights sum to {total}");
            let degree = 2 * n as i32 - 1;
            let integral: f64 = rule.iter().map(|(x, w)| w * x.powi(degree)).sum();
            let exact = 1.0 / (2 * n) as f64;
            assert!((integral - exact).abs() < 1e-12 * exact, "n = {n}: ∫x^{degree} = {integral}, not {exact}");
        }
    }
}

//! `salient bench --convergence`: integrated gradients' completeness error
//! |Σ scores − (f(x) − f(x'))| / |f(x) − f(x')| against the number of gradients, on short prompts,
//! for the engine's adaptive rule and for the fixed rules it replaced or is usually compared with:
//! - adaptive: the engine's own method (`explain`), which reports its error and gradients used;
//! - Gauss–Legendre with n nodes (the engine's rule before the adaptive one);
//! - trapezoid (n + 1 nodes at k/n, halved end weights) and midpoint (n nodes at (k + ½)/n), read
//!   off one grid of max + 1 nodes j/max, which holds the trapezoid's nodes for every n dividing
//!   max and the midpoint's for n up to max/2 (the midpoint at max would need max more gradients:
//!   reported as null).
//!
//! Σᵢ scoreᵢ = Σₖ wₖ ⟨x − x', ∇f(x(αₖ))⟩, so each fixed rule's node needs only that one dot product.

use super::{emit, ms_since, threads_json, BenchArgs};
use salient::engine::attribution::methods::Path;
use salient::engine::runtime::progress::ProgressSink;
use salient::engine::runtime::ready::now;
use salient::engine::{explain, Baseline, MethodParams, Model, Problem, TargetSpec};
use std::time::Instant;

pub fn study(
    model: &Model,
    prompts: &[&str],
    steps: &[usize],
    args: &BenchArgs,
) -> Result<(), String> {
    let max = *steps.iter().max().ok_or("--convergence: no step counts")?;
    if let Some(bad) = steps.iter().find(|&&n| n < 3 || max % n != 0) {
        return Err(format!(
            "--convergence: every step count must be at least 3 and divide the largest ({bad})"
        ));
    }
    for prompt in prompts {
        let context = super::super::native_context(ProgressSink::default());
        let problem = now(Problem::new(model, prompt, &TargetSpec::top(), None, &context))
            .map_err(|e| e.to_string())?;
        let path = PathDots::new(&problem)?;
        let relative = |sum: f64| (sum - path.change).abs() / path.change.abs();

        let (mut adaptive, mut adaptive_gradients, mut adaptive_ms) =
            (Vec::new(), Vec::new(), Vec::new());
        for &n in steps {
            let params =
                MethodParams { steps: n, baseline: Baseline::Pad, ..MethodParams::default() };
            let t = Instant::now();
            let result = now(explain(&problem, "integrated_gradients", &params, 1))
                .map_err(|e| e.to_string())?;
            adaptive_ms.push(ms_since(t));
            adaptive.push(result.completeness_error);
            adaptive_gradients.push(result.path_gradients);
        }

        let gauss_legendre = steps
            .iter()
            .map(|&n| {
                let rule = gauss_legendre(n);
                let dots = path.dots(&rule.iter().map(|(alpha, _)| *alpha).collect::<Vec<_>>())?;
                Ok(relative(rule.iter().zip(dots).map(|((_, w), dot)| w * dot).sum()))
            })
            .collect::<Result<Vec<f64>, String>>()?;

        let t = Instant::now();
        let grid = path.dots(&(0..=max).map(|j| j as f64 / max as f64).collect::<Vec<_>>())?;
        let uniform_ms = ms_since(t);
        let midpoint: Vec<Option<f64>> = steps
            .iter()
            .map(|&n| {
                (max % (2 * n) == 0).then(|| {
                    relative(
                        (0..n).map(|k| grid[(2 * k + 1) * max / (2 * n)]).sum::<f64>() / n as f64,
                    )
                })
            })
            .collect();
        let trapezoid: Vec<f64> = steps
            .iter()
            .map(|&n| {
                let h = max / n;
                let inner: f64 = (1..n).map(|k| grid[k * h]).sum();
                relative((inner + (grid[0] + grid[max]) / 2.0) / n as f64)
            })
            .collect();
        emit(serde_json::json!({
            "kind": "convergence",
            "prompt": prompt,
            "tokens": problem.len(),
            "target": model.tokenizer.token(problem.target()).map(|t| t.text).unwrap_or_default(),
            "change": path.change,
            "steps": steps,
            "adaptive": adaptive,
            "adaptive_gradients": adaptive_gradients,
            "adaptive_ms": adaptive_ms,
            "gauss_legendre": gauss_legendre,
            "midpoint": midpoint,
            "trapezoid": trapezoid,
            "uniform_grid_nodes": grid.len(),
            "uniform_grid_ms": uniform_ms,
            "threads": threads_json(&args.threads_label),
        }));
    }
    Ok(())
}

/// ⟨x − x', ∇f(x(α))⟩ at points of the engine's path from the pad baseline x' to the input x,
/// and f(x) − f(x').
struct PathDots<'p, 'm> {
    path: Path<'p, 'm>,
    change: f64,
}

impl<'p, 'm> PathDots<'p, 'm> {
    fn new(problem: &'p Problem<'m>) -> Result<Self, String> {
        let path = Path::new(problem, Baseline::Pad).map_err(|e| e.to_string())?;
        let start = now(path.start()).map_err(|e| e.to_string())?;
        let change = problem.input_value().map_err(|e| e.to_string())? - start.value;
        Ok(Self { path, change })
    }

    fn dots(&self, alphas: &[f64]) -> Result<Vec<f64>, String> {
        let nodes = now(self.path.nodes(alphas)).map_err(|e| e.to_string())?;
        Ok(nodes.iter().map(|node| node.per_token.iter().sum()).collect())
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
            assert!(
                (integral - exact).abs() < 1e-12 * exact,
                "n = {n}: ∫x^{degree} = {integral}, not {exact}"
            );
        }
    }
}

//! Integrated gradients (Sundararajan et al. 2017): along the straight path x(α) = x' + α (x − x')
//! from the baseline x' to the input x, scoreᵢ = Σ_d (x − x')ᵢd · ∫₀¹ ∂ f / ∂ xᵢd (x(α)) dα.
//! The scores add up to f(x) − f(x') when the integral is exact; how far they miss is reported as
//! the completeness error.
//!
//! The integral is adaptive quadrature with an exact error signal. Along the path the sum of the
//! integrands, h(α) = ⟨x − x', ∇f(x(α))⟩, integrates over any [a, b] to f(x(b)) − f(x(a)), and
//! each gradient evaluation yields f at its node for free. So every interval's estimate of ∫h is
//! checked against the true change of f over it, and the intervals that miss most are bisected
//! (two new gradients each; the rules' nodes nest, so none is wasted) until the scores add up or
//! the step budget is spent. This model's paths are flat for most of [0, 1] and steep in a few
//! narrow places, where a fixed rule (Gauss–Legendre, uniform) spends most nodes in vain.
//!
//! Intervals use Simpson's rule, except the one that starts at the baseline: there the gradient
//! is not usable (at the zero vector it is not even finite), so that interval takes Milne's open
//! rule on its quarter points, which is as exact (to cubics) and nests the same way.

use crate::engine::attribution::methods::{
    AttributionMethod, Baseline, MethodInfo, MethodParams, Param, Scores, ScoresFuture,
};
use crate::engine::attribution::problem::Problem;
use crate::engine::error::{EngineError, Result};
use crate::engine::runtime::progress;
use candle_core::{DType, Tensor, D};

/// The first mesh takes four gradients: at α = ¼, ½, ¾ and the input's own (α = 1).
pub const MIN_STEPS: usize = 4;
/// More gradients than this buy no accuracy in f32 and only cost time.
pub const MAX_STEPS: usize = 1024;
/// Stop once the intervals' errors add up to less than this fraction of f(x) − f(x'): well below
/// anything a map can show, and above the noise of f32 sums...
const TOLERANCE: f64 = 1e-4;
/// ...while the rule has taken fewer than this many gradients. Past them it refines only while
/// the scores miss f(x) − f(x') by more than [`COMPLETENESS_GOAL`]: most texts reach the
/// tolerance sooner, and a text with a steep path spends the rest of the budget on the goal alone.
pub const AIM_GRADIENTS: usize = 32;
/// The completeness the default budget is meant to reach (the bar the integrated-gradients paper
/// sets).
pub const COMPLETENESS_GOAL: f64 = 0.01;
/// The default budget of gradients: four times [`AIM_GRADIENTS`], for the texts whose paths are
/// steep in places.
pub const DEFAULT_STEPS: usize = 128;
/// Intervals narrower than this are not split: α would no longer change in f32.
const MIN_WIDTH: f64 = 1.0 / (1u64 << 20) as f64;
/// A round also splits the intervals whose error is at least this fraction of the worst, so a
/// batch of gradients is filled with work that the worst interval's refinement would soon need.
const ROUND_SHARE: f64 = 0.25;

pub struct IntegratedGradients;

const INFO: MethodInfo = MethodInfo {
    name: "integrated_gradients",
    label: "Integrated gradients",
    signed: true,
    target_independent: false,
    params: &[Param::Steps, Param::Baseline],
};

impl AttributionMethod for IntegratedGradients {
    fn info(&self) -> &'static MethodInfo {
        &INFO
    }

    fn gradient_inputs(&self, params: &MethodParams) -> usize {
        params.steps
    }

    /// At most: the input's gradient from the kept forward pass, f at the baseline, and every
    /// other step's gradient (the rule stops early once the scores add up).
    fn work(&self, seq: usize, params: &MethodParams) -> u64 {
        progress::backward(1, seq)
            + progress::forward(1, seq)
            + progress::gradients(params.steps.saturating_sub(1), seq)
    }

    fn attribute<'a>(
        &'a self,
        problem: &'a Problem<'_>,
        params: &'a MethodParams,
    ) -> ScoresFuture<'a> {
        Box::pin(async move {
            if !(MIN_STEPS..=MAX_STEPS).contains(&params.steps) {
                return Err(EngineError::InvalidRequest(format!(
                    "Integrated gradients needs between {MIN_STEPS} and {MAX_STEPS} steps (got {}).",
                    params.steps
                )));
            }
            let path = Path::new(problem, params.baseline)?;
            // The input's gradient first: it uses the kept forward pass, which any other pass frees.
            let end = path.input_node().await?;
            let ends = [path.start().await?, end];
            let batch = problem.gradient_batch_rows().div_ceil(2);
            let integral =
                adaptive_quadrature(params.steps, batch, ends, async |alphas: &[f64]| {
                    path.nodes(alphas).await
                })
                .await?;
            let change = integral.change;
            // A relative error of an exactly zero change is undefined; report none rather than ∞.
            let completeness_error = (change != 0.0)
                .then(|| (integral.scores.iter().sum::<f64>() - change).abs() / change.abs());
            Ok(Scores {
                values: integral.scores.into_iter().map(|s| s as f32).collect(),
                completeness_error,
                gradients: Some(integral.gradients),
                ..Scores::default()
            })
        })
    }
}

/// About how many gradients in all would bring a completeness error of `error` after `gradients`
/// under [`COMPLETENESS_GOAL`]: Simpson's error falls with the fourth power of the intervals'
/// width, so by (error / goal)^¼, with a quarter more for the intervals that converge slower. At
/// most [`MAX_STEPS`].
/// `gradients` when the goal is met.
pub fn gradients_for_goal(error: f64, gradients: usize) -> usize {
    if error <= COMPLETENESS_GOAL {
        return gradients;
    }
    let ratio = error / COMPLETENESS_GOAL;
    let wanted = (gradients as f64 * ratio.powf(0.25) * 1.25).ceil() as usize;
    wanted.clamp(gradients + 2, MAX_STEPS)
}

/// Each token's integral over [0, 1], f(1) − f(0), and how many gradients were taken.
struct Integral {
    scores: Vec<f64>,
    change: f64,
    gradients: usize,
}

/// The adaptive rule, given the path's start (its value only) and end (α = 1, with its gradient)
/// and a way to evaluate nodes (in batches of up to 2 · `batch_intervals`), taking at most
/// `steps` gradients in all.
async fn adaptive_quadrature(
    steps: usize,
    batch_intervals: usize,
    [start, end]: [PathNode; 2],
    mut evaluate: impl AsyncFnMut(&[f64]) -> Result<Vec<PathNode>>,
) -> Result<Integral> {
    let change = end.value - start.value;
    let mut nodes = vec![start, end];
    nodes.extend(evaluate(&[0.25, 0.5, 0.75]).await?);
    let mut mesh = vec![Interval::new(&nodes, 0, Rule::Milne([2, 3, 4]), 1)];
    let gradients = |nodes: &[PathNode]| nodes.len() - 1; // all but the start's
    while gradients(&nodes) + 2 <= steps {
        // Within the aim: until every interval adds up. Past it: until the scores do (their
        // miss is the intervals' signed misses summed), within the goal.
        let done = match gradients(&nodes) < AIM_GRADIENTS {
            true => mesh.iter().map(|i| i.miss.abs()).sum::<f64>() <= TOLERANCE * change.abs(),
            false => {
                mesh.iter().map(|i| i.miss).sum::<f64>().abs() <= COMPLETENESS_GOAL * change.abs()
            }
        };
        if done {
            break;
        }
        let split =
            worst_intervals(&mesh, &nodes, ((steps - gradients(&nodes)) / 2).min(batch_intervals));
        if split.is_empty() {
            break;
        }
        let alphas: Vec<f64> = split.iter().flat_map(|&k| mesh[k].new_nodes(&nodes)).collect();
        let first_new = nodes.len();
        nodes.extend(evaluate(&alphas).await?);
        for (j, &k) in split.iter().enumerate() {
            let (left, right) = mesh[k].split(&nodes, [first_new + 2 * j, first_new + 2 * j + 1]);
            mesh[k] = left;
            mesh.push(right);
        }
    }
    let mut scores = vec![0.0f64; nodes[1].per_token.len()];
    for interval in &mesh {
        for (score, part) in scores.iter_mut().zip(interval.estimate(&nodes)) {
            *score += part;
        }
    }
    Ok(Integral { scores, change, gradients: gradients(&nodes) })
}

/// The straight path from the baseline to the input, and the integrand at its points. Public for
/// `salient bench --convergence`, which compares other rules on the same points.
pub struct Path<'p, 'm> {
    problem: &'p Problem<'m>,
    baseline: Tensor,
    delta: Tensor,
    delta64: Tensor,
}

/// A point of the path: where, f there, and (but at the start) per token ⟨x − x', ∂f/∂x⟩.
pub struct PathNode {
    pub alpha: f64,
    pub value: f64,
    pub per_token: Vec<f64>,
}

impl<'p, 'm> Path<'p, 'm> {
    pub fn new(problem: &'p Problem<'m>, baseline: Baseline) -> Result<Self> {
        let baseline = problem.baseline(baseline)?;
        let delta = (&problem.input() - &baseline)?;
        let delta64 = delta.to_dtype(DType::F64)?;
        Ok(Self { problem, baseline, delta, delta64 })
    }

    fn project(&self, gradient: &Tensor) -> Result<Vec<f64>> {
        Ok((gradient.to_dtype(DType::F64)? * &self.delta64)?.sum(D::Minus1)?.to_vec1::<f64>()?)
    }

    /// The baseline, α = 0: only its value, by a forward pass.
    pub async fn start(&self) -> Result<PathNode> {
        let value = self.problem.values(std::slice::from_ref(&self.baseline)).await?[0];
        Ok(PathNode { alpha: 0.0, value, per_token: Vec::new() })
    }

    /// α = 1 is the input itself: its gradient comes from the forward pass already kept, and its
    /// embeddings are exact rather than x' + (x − x'), which may round differently in f32.
    async fn input_node(&self) -> Result<PathNode> {
        let gradient = self.problem.input_gradient().await?;
        Ok(PathNode {
            alpha: 1.0,
            value: self.problem.input_value()?,
            per_token: self.project(&gradient)?,
        })
    }

    /// x' + α (x − x') at each α (the end too: there it may differ from x by f32 rounding).
    pub async fn nodes(&self, alphas: &[f64]) -> Result<Vec<PathNode>> {
        let points = alphas
            .iter()
            .map(|&alpha| &self.baseline + (&self.delta * alpha)?)
            .collect::<candle_core::Result<Vec<_>>>()?;
        let mut nodes = Vec::with_capacity(alphas.len());
        self.problem
            .gradients(&points, |k, value, gradient| {
                nodes.push(PathNode {
                    alpha: alphas[k],
                    value,
                    per_token: self.project(gradient)?,
                });
                Ok(())
            })
            .await?;
        Ok(nodes)
    }
}

/// An interval's rule, by the indices of its inner nodes.
#[derive(Clone, Copy)]
enum Rule {
    /// The midpoint: w/6 · (h(a) + 4 h(m) + h(b)).
    Simpson(usize),
    /// The quarter points, for the interval at the path's start: w/3 · (2 h(q₁) − h(m) + 2 h(q₃)).
    Milne([usize; 3]),
}

/// [a, b] (indices into the nodes), its rule, and how far the rule misses f(b) − f(a).
#[derive(Clone, Copy)]
struct Interval {
    start: usize,
    rule: Rule,
    end: usize,
    /// The rule's Σ h − (f(b) − f(a)), signed.
    miss: f64,
}

impl Interval {
    fn new(nodes: &[PathNode], start: usize, rule: Rule, end: usize) -> Self {
        let mut interval = Self { start, rule, end, miss: 0.0 };
        let estimate: f64 = interval.estimate(nodes).sum();
        interval.miss = estimate - (nodes[end].value - nodes[start].value);
        interval
    }

    fn width(&self, nodes: &[PathNode]) -> f64 {
        nodes[self.end].alpha - nodes[self.start].alpha
    }

    /// Each token's integral over this interval.
    fn estimate<'n>(&self, nodes: &'n [PathNode]) -> Box<dyn Iterator<Item = f64> + 'n> {
        let w = self.width(nodes);
        let h = |k: usize| nodes[k].per_token.iter();
        match self.rule {
            Rule::Simpson(m) => Box::new(
                h(self.start)
                    .zip(h(m))
                    .zip(h(self.end))
                    .map(move |((a, m), b)| w / 6.0 * (a + 4.0 * m + b)),
            ),
            Rule::Milne([q1, m, q3]) => Box::new(
                h(q1)
                    .zip(h(m))
                    .zip(h(q3))
                    .map(move |((q1, m), q3)| w / 3.0 * (2.0 * q1 - m + 2.0 * q3)),
            ),
        }
    }

    /// Where splitting in halves needs new gradients: the new halves' missing inner nodes.
    fn new_nodes(&self, nodes: &[PathNode]) -> [f64; 2] {
        let (a, w) = (nodes[self.start].alpha, self.width(nodes));
        match self.rule {
            Rule::Simpson(_) => [a + w / 4.0, a + 3.0 * w / 4.0],
            Rule::Milne(_) => [a + w / 8.0, a + 3.0 * w / 8.0],
        }
    }

    /// The two halves, given the indices of the nodes at [`Self::new_nodes`]. A Milne interval's
    /// right half has all of Simpson's nodes already; its left half starts at the path's start.
    fn split(&self, nodes: &[PathNode], [first, second]: [usize; 2]) -> (Interval, Interval) {
        match self.rule {
            Rule::Simpson(m) => (
                Interval::new(nodes, self.start, Rule::Simpson(first), m),
                Interval::new(nodes, m, Rule::Simpson(second), self.end),
            ),
            Rule::Milne([q1, m, q3]) => (
                Interval::new(nodes, self.start, Rule::Milne([first, q1, second]), m),
                Interval::new(nodes, m, Rule::Simpson(q3), self.end),
            ),
        }
    }
}

/// Up to `budget` intervals to split next: the worst, and those within [`ROUND_SHARE`] of it,
/// worst first; never one too narrow to split.
fn worst_intervals(mesh: &[Interval], nodes: &[PathNode], budget: usize) -> Vec<usize> {
    let mut order: Vec<usize> =
        (0..mesh.len()).filter(|&k| mesh[k].width(nodes) >= 2.0 * MIN_WIDTH).collect();
    order.sort_by(|&i, &j| mesh[j].miss.abs().total_cmp(&mesh[i].miss.abs()));
    let worst = order.first().map_or(0.0, |&k| mesh[k].miss.abs());
    order.truncate(budget);
    order.retain(|&k| mesh[k].miss.abs() >= ROUND_SHARE * worst);
    order
}

#[cfg(test)]
mod tests {
    use super::{
        adaptive_quadrature, gradients_for_goal, Integral, PathNode, AIM_GRADIENTS,
        COMPLETENESS_GOAL, MAX_STEPS,
    };
    use crate::engine::runtime::ready::now;

    /// Two tokens: a logistic step of width 1/200 at α = 0.85 (the shape of this model's paths) and a
    /// gentle parabola. PathNode values are f = f₁ + f₂; per-token integrands their derivatives.
    fn steep_path(alpha: f64) -> PathNode {
        let s = 1.0 / (1.0 + (-200.0 * (alpha - 0.85)).exp());
        PathNode {
            alpha,
            value: s + 0.3 * alpha * alpha,
            per_token: vec![200.0 * s * (1.0 - s), 0.6 * alpha],
        }
    }

    /// Runs the rule on `node`, whose gradient at α = 0 must never be asked for (it is NaN here).
    fn integrate(
        steps: usize,
        batch: usize,
        node: impl Fn(f64) -> PathNode,
    ) -> (Integral, Vec<f64>) {
        let start = PathNode {
            alpha: 0.0,
            value: node(0.0).value,
            per_token: vec![f64::NAN; node(1.0).per_token.len()],
        };
        let mut evaluated = Vec::new();
        let integral = now(adaptive_quadrature(steps, batch, [start, node(1.0)], async |alphas| {
            evaluated.extend_from_slice(alphas);
            Ok(alphas.iter().map(|&a| node(a)).collect())
        }))
        .unwrap();
        assert!(evaluated.iter().all(|&a| a > 0.0 && a < 1.0), "{evaluated:?}");
        (integral, evaluated)
    }

    /// Composite Simpson on n + 1 equally spaced nodes (n even), for comparison.
    fn uniform_simpson(n: usize, h: impl Fn(f64) -> f64) -> f64 {
        let weight = |k: usize| match k {
            0 => 1.0,
            k if k == n => 1.0,
            k if k % 2 == 1 => 4.0,
            _ => 2.0,
        };
        (0..=n).map(|k| weight(k) * h(k as f64 / n as f64)).sum::<f64>() / (3.0 * n as f64)
    }

    #[test]
    fn refines_where_the_path_is_steep_and_beats_a_uniform_rule() {
        let exact = [steep_path(1.0).value - 0.3 - steep_path(0.0).value, 0.3];
        for batch in [1, 4] {
            let (integral, evaluated) = integrate(32, batch, steep_path);
            assert!(
                integral.gradients <= 32 && integral.gradients == evaluated.len() + 1,
                "{batch}: {}",
                integral.gradients
            );
            let errors: Vec<f64> =
                integral.scores.iter().zip(exact).map(|(s, e)| (s - e).abs()).collect();
            let uniform = (uniform_simpson(30, |a| steep_path(a).per_token[0]) - exact[0]).abs();
            let near_step = evaluated.iter().filter(|&&a| (0.7..=1.0).contains(&a)).count();
            eprintln!("batch {batch}: errors {errors:?}, uniform Simpson {uniform:.1e}, {near_step} of {} nodes in [0.7, 1]", evaluated.len());
            assert!(errors.iter().all(|e| *e < 1e-3), "batch {batch}: errors {errors:?}");
            assert!(errors[0] * 10.0 < uniform, "batch {batch}: {errors:?} vs uniform {uniform:e}");
            assert!(2 * near_step > evaluated.len(), "batch {batch}: nodes {evaluated:?}");
        }
    }

    /// A step too steep for the aim's gradients: the default budget spends more on it, until the
    /// scores add up within the goal, and not beyond.
    #[test]
    fn past_the_aim_the_rule_refines_to_the_goal_only() {
        // Nine steps of width 1/3000 at α = 0.1, 0.2, …, 0.9.
        let steeper = |alpha: f64| {
            let (mut value, mut slope) = (0.0, 0.0);
            for k in 1..10 {
                let s = 1.0 / (1.0 + (-3000.0 * (alpha - k as f64 / 10.0)).exp());
                value += s;
                slope += 3000.0 * s * (1.0 - s);
            }
            PathNode { alpha, value, per_token: vec![slope] }
        };
        let relative = |integral: &Integral| {
            let change = steeper(1.0).value - steeper(0.0).value;
            (integral.scores[0] - change).abs() / change.abs()
        };
        let (aimed, _) = integrate(AIM_GRADIENTS, 2, steeper);
        let (refined, _) = integrate(MAX_STEPS, 2, steeper);
        eprintln!(
            "{} gradients: {:.2e}; {} gradients: {:.2e}",
            aimed.gradients,
            relative(&aimed),
            refined.gradients,
            relative(&refined)
        );
        assert!(relative(&aimed) > COMPLETENESS_GOAL, "the aim alone suffices: no test");
        assert!(relative(&refined) <= COMPLETENESS_GOAL);
        assert!(refined.gradients > AIM_GRADIENTS && refined.gradients < MAX_STEPS);
        assert!(relative(&refined) > COMPLETENESS_GOAL / 1000.0, "refined beyond the goal");
    }

    #[test]
    fn the_estimate_for_the_goal_grows_with_the_error() {
        assert_eq!(gradients_for_goal(0.005, 128), 128); // met already
        let (twice, sixteen) = (gradients_for_goal(0.02, 128), gradients_for_goal(0.16, 128));
        assert!(128 < twice && twice < sixteen && sixteen <= MAX_STEPS, "{twice} {sixteen}");
        assert_eq!(gradients_for_goal(0.16, 128), 320); // twice as many gradients, and a quarter
        assert_eq!(gradients_for_goal(1e9, 128), MAX_STEPS);
    }

    /// A path that is steep right at its start (where no gradient is taken) is refined towards it.
    #[test]
    fn refines_towards_the_start_without_evaluating_it() {
        let sqrt_path = |alpha: f64| PathNode {
            alpha,
            value: alpha.sqrt(),
            per_token: vec![0.5 / alpha.sqrt()],
        };
        let (integral, evaluated) = integrate(40, 2, sqrt_path);
        let smallest = evaluated.iter().copied().fold(1.0, f64::min);
        eprintln!(
            "√α: integral {:?}, {} gradients, smallest node {smallest:e}",
            integral.scores, integral.gradients
        );
        assert!((integral.scores[0] - 1.0).abs() < 1e-2, "{:?}", integral.scores);
        assert!(smallest < 1e-3, "never went near the start: {evaluated:?}");
    }

    /// Both rules are exact for cubics: the first mesh already adds up, so no more gradients.
    #[test]
    fn stops_as_soon_as_the_scores_add_up() {
        let cubic = |alpha: f64| PathNode {
            alpha,
            value: alpha.powi(3) - alpha,
            per_token: vec![3.0 * alpha * alpha, -1.0],
        };
        let (integral, _) = integrate(64, 1, cubic);
        assert_eq!(integral.gradients, 4);
        assert!(
            (integral.scores[0] - 1.0).abs() < 1e-15 && (integral.scores[1] + 1.0).abs() < 1e-15,
            "{:?}",
            integral.scores
        );
        // A path that never adds up (the values disagree with the gradients) uses the whole budget.
        let inconsistent = |alpha: f64| PathNode { alpha, value: 0.0, per_token: vec![1.0] };
        assert_eq!(integrate(64, 2, inconsistent).0.gradients, 64);
    }
}

//! Does an attribution point at what the prediction depends on? Replace the tokens it ranks
//! highest by the baseline and watch p(target) fall (the deletion curve and comprehensiveness), or
//! keep only those tokens and see how much of p(target) is lost (sufficiency), as in ERASER
//! (DeYoung et al. 2020). The same numbers for random orders are the reference: an attribution
//! that beats chance removes more and needs less.
//!
//! Always read on p(target), whatever quantity the attribution explains, so numbers are
//! comparable across target kinds.

use crate::engine::attribution::problem::Baseline;
use crate::engine::attribution::problem::{self, Problem};
use crate::engine::error::{EngineError, Result};
use crate::engine::runtime::random::SplitMix64;
use candle_core::Tensor;
use serde::{Deserialize, Serialize};

/// Percent of tokens removed at each point of the deletion curve.
const CURVE_PERCENTS: [usize; 11] = [0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100];
/// The percents comprehensiveness and sufficiency average over; all lie on the curve.
const SUMMARY_PERCENTS: [usize; 3] = [10, 20, 50];
/// Random orders averaged for the reference numbers.
const RANDOM_ORDERS: usize = 3;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Faithfulness {
    /// (fraction of tokens replaced, p(target)) with the highest-scored tokens replaced first, at
    /// 0, 10, …, 100 %. The fraction is the one really replaced (a count of tokens over the
    /// length); on short texts where percents round to the same count, that count appears once.
    pub deletion_curve: Vec<(f32, f64)>,
    /// Mean over 10, 20 and 50 % of p(x) − p(x with its top tokens replaced): higher is better.
    pub comprehensiveness: f64,
    /// Mean over 10, 20 and 50 % of p(x) − p(only the top tokens kept): lower is better.
    pub sufficiency: f64,
    /// The same two numbers for random orders (the mean over three seeded orders).
    pub random_comprehensiveness: f64,
    pub random_sufficiency: f64,
}

/// The faithfulness numbers of `scores` (one per token of `problem`), replacing tokens by
/// `baseline`; `seed` picks the random orders. All forward passes go through one batched call.
pub async fn measure(
    problem: &Problem<'_>,
    scores: &[f32],
    baseline: Baseline,
    seed: u64,
) -> Result<Faithfulness> {
    let n = problem.len();
    if scores.len() != n {
        return Err(EngineError::Internal(format!("{} scores for {n} tokens", scores.len())));
    }
    let Perturbations { curve_counts, replaced } = perturbations(scores, seed);
    let (input, substitute) = (problem.input(), problem.baseline(baseline)?);
    let inputs = replaced
        .iter()
        .map(|positions| replace_rows(&input, &substitute, positions))
        .collect::<Result<Vec<_>>>()?;
    let probs = problem.probabilities_of_target(&inputs).await?;

    let (curve, rest) = probs.split_at(curve_counts.len());
    let (kept, random) = rest.split_at(SUMMARY_PERCENTS.len());
    let p_x = curve[0];
    let on_curve: Vec<f64> = SUMMARY_PERCENTS
        .iter()
        .map(|s| {
            curve[curve_counts
                .iter()
                .position(|k| *k == count(*s, n))
                .expect("summary percents lie on the curve")]
        })
        .collect();
    let per_random: Vec<(f64, f64)> = random
        .chunks(2 * SUMMARY_PERCENTS.len())
        .map(|r| {
            let (removed, kept) = r.split_at(SUMMARY_PERCENTS.len());
            (mean_drop(p_x, removed), mean_drop(p_x, kept))
        })
        .collect();
    Ok(Faithfulness {
        deletion_curve: curve_counts
            .iter()
            .zip(curve)
            .map(|(k, p)| (*k as f32 / n as f32, *p))
            .collect(),
        comprehensiveness: mean_drop(p_x, &on_curve),
        sufficiency: mean_drop(p_x, kept),
        random_comprehensiveness: per_random.iter().map(|r| r.0).sum::<f64>()
            / RANDOM_ORDERS as f64,
        random_sufficiency: per_random.iter().map(|r| r.1).sum::<f64>() / RANDOM_ORDERS as f64,
    })
}

/// The work (in [`progress`](crate::engine::runtime::progress) units) of [`measure`] on `scores` with `seed`: each
/// perturbed input continues the text's keys and values up to the first position it replaces
/// (`Problem::values` finds that by comparing embeddings; a replaced token whose embedding is the
/// baseline's would share more, and the check would do a little less than this).
pub fn work(scores: &[f32], seed: u64) -> u64 {
    let n = scores.len();
    let mut shared: Vec<usize> = perturbations(scores, seed)
        .replaced
        .iter()
        .map(|positions| positions.iter().copied().min().unwrap_or(n).min(n.saturating_sub(1)))
        .collect();
    shared.sort_unstable();
    problem::values_work([shared], n)
}

/// The inputs `measure` reads p(target) at, each named by the positions it replaces: first the
/// deletion curve's (one per count in `curve_counts`), then "keep only the top k" at each summary
/// percent, then each random order's "remove" and "keep only" at each summary percent.
struct Perturbations {
    curve_counts: Vec<usize>,
    replaced: Vec<Vec<usize>>,
}

fn perturbations(scores: &[f32], seed: u64) -> Perturbations {
    let n = scores.len();
    // Signed scores: positive supports the target, so the most supportive go first; unsigned
    // scores are magnitudes, largest first. Both are a descending sort; ties keep token order.
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|a, b| scores[*b].total_cmp(&scores[*a]));
    let mut rng = SplitMix64::new(seed);
    let random_orders: Vec<Vec<usize>> = (0..RANDOM_ORDERS).map(|_| rng.permutation(n)).collect();

    // Short texts round several percents to one count: the curve keeps one point per count.
    let mut curve_counts: Vec<usize> = CURVE_PERCENTS.iter().map(|p| count(*p, n)).collect();
    curve_counts.dedup();
    // Each perturbed input is named by the positions it replaces: "remove the top k" replaces
    // order[..k], "keep only the top k" replaces order[k..].
    let removed = |order: &[usize], percent| order[..count(percent, n)].to_vec();
    let kept_only = |order: &[usize], percent| order[count(percent, n)..].to_vec();
    let mut replaced: Vec<Vec<usize>> = curve_counts.iter().map(|k| order[..*k].to_vec()).collect();
    replaced.extend(SUMMARY_PERCENTS.iter().map(|p| kept_only(&order, *p)));
    for random in &random_orders {
        replaced.extend(SUMMARY_PERCENTS.iter().map(|p| removed(random, *p)));
        replaced.extend(SUMMARY_PERCENTS.iter().map(|p| kept_only(random, *p)));
    }
    Perturbations { curve_counts, replaced }
}

/// How many of `n` tokens `percent` stands for: rounded to nearest, at least one when above 0 %.
fn count(percent: usize, n: usize) -> usize {
    match percent {
        0 => 0,
        _ => ((percent * n + 50) / 100).max(1),
    }
}

/// The mean of p(x) − p over `probs`.
fn mean_drop(p_x: f64, probs: &[f64]) -> f64 {
    probs.iter().map(|p| p_x - p).sum::<f64>() / probs.len() as f64
}

/// `input` (`(seq, width)`) with the rows at `positions` taken from `substitute`.
fn replace_rows(input: &Tensor, substitute: &Tensor, positions: &[usize]) -> Result<Tensor> {
    let mut mask = vec![0u8; input.dim(0)?];
    for p in positions {
        mask[*p] = 1;
    }
    let mask =
        Tensor::from_vec(mask, (input.dim(0)?, 1), input.device())?.broadcast_as(input.shape())?;
    Ok(mask.where_cond(substitute, input)?)
}

#[cfg(test)]
mod tests {
    use super::count;

    #[test]
    fn counts_round_to_nearest_and_never_drop_to_zero() {
        assert_eq!(count(0, 7), 0);
        assert_eq!(count(10, 7), 1); // 0.7
        assert_eq!(count(20, 7), 1); // 1.4
        assert_eq!(count(50, 7), 4); // 3.5 rounds up
        assert_eq!(count(10, 3), 1); // 0.3, at least one
        assert_eq!(count(100, 7), 7);
    }
}

//! KernelSHAP (Lundberg & Lee 2017): Shapley values as the weighted least-squares fit of an
//! additive model to v over coalitions, with the Shapley kernel's weights, φ₀ = v(none) and
//! Σφ = v(all) − v(none) imposed (the last feature's score is eliminated by the sum). When the
//! budget holds every coalition the fit is exact and equals the Shapley values; otherwise
//! coalitions are drawn from the kernel's distribution in complementary pairs (Covert & Lee 2021),
//! and the standard errors are the sandwich estimator's with a pair as one draw.

use crate::engine::attribution::least_squares::{fit, Options, Row};
use crate::engine::attribution::methods::coalitions::{
    self, random_subset, too_few, Game, Perturbation,
};
use crate::engine::attribution::methods::{MethodInfo, MethodParams, Scores};
use crate::engine::error::Result;
use crate::engine::runtime::random::SplitMix64;

const INFO: MethodInfo = MethodInfo {
    name: "kernel_shap",
    label: "KernelSHAP",
    signed: true,
    target_independent: false,
    params: coalitions::PARAMS,
};

pub const KERNEL_SHAP: Perturbation =
    Perturbation { info: &INFO, score: |game, params| Box::pin(kernel_shap(game, params)) };

async fn kernel_shap(game: &Game<'_>, params: &MethodParams) -> Result<Scores> {
    let players = game.players();
    if players == 1 {
        return Ok(game.scores(&[game.total()], Some(&[0.0]), true));
    }
    // v(none) took one coalition of the budget.
    let enumerable = players < 20 && (1usize << players) - 2 < params.budget;
    let (coalitions, weights, clusters) = match enumerable {
        true => every_coalition(players),
        false => {
            let pairs = (params.budget - 1) / 2;
            if pairs < players {
                return Err(too_few(INFO.label, 2 * players + 1, players, params.features));
            }
            sampled_pairs(players, pairs, params.seed)
        }
    };
    let values = game.values(&coalitions).await?;
    // φ_last = total − Σ_{j<last} φ_j turns v(z) − v(none) = z·φ into a regression on the other
    // features: (v(z) − v(none) − z_last·total) = Σ_j (z_j − z_last) φ_j.
    let (last, total) = (players - 1, game.total());
    let rows: Vec<Row> = coalitions
        .iter()
        .zip(values)
        .zip(weights.iter().zip(clusters))
        .map(|((kept, value), (&weight, cluster))| {
            let z_last = kept[last] as i8;
            Row {
                x: kept[..last].iter().map(|&k| k as i8 - z_last).collect(),
                y: value - game.empty - z_last as f64 * total,
                weight,
                cluster,
            }
        })
        .collect();
    let options = Options { intercept: false, ridge: 0.0, sampled: !enumerable };
    let fit = fit(&rows, last, &options)?;
    let mut scores = fit.coefficients;
    scores.push(total - scores.iter().sum::<f64>());
    let errors = match (fit.standard_errors, fit.sum_standard_error) {
        (Some(mut errors), Some(sum)) => {
            errors.push(sum);
            errors
        }
        _ => vec![0.0; players], // every coalition: exact
    };
    Ok(game.scores(&scores, Some(&errors), true))
}

/// Every coalition but none and all, with the Shapley kernel's weight
/// (m − 1) / (C(m, s) · s · (m − s)) for a coalition of s of m features; each its own cluster.
fn every_coalition(players: usize) -> (Vec<Vec<bool>>, Vec<f64>, Vec<usize>) {
    let coalitions: Vec<Vec<bool>> = (1..(1usize << players) - 1)
        .map(|bits| (0..players).map(|j| bits >> j & 1 == 1).collect())
        .collect();
    let weights = coalitions
        .iter()
        .map(|kept| {
            let size = kept.iter().filter(|&&k| k).count();
            let m = players as f64;
            (m - 1.0) / (binomial(players, size) * size as f64 * (m - size as f64))
        })
        .collect();
    let clusters = (0..coalitions.len()).collect();
    (coalitions, weights, clusters)
}

/// `pairs` coalitions drawn from the Shapley kernel's distribution (a size s with probability
/// ∝ (m − 1) / (s (m − s)), then s features uniformly), each followed by its complement; weights
/// 1, since the kernel is in the draw.
fn sampled_pairs(
    players: usize,
    pairs: usize,
    seed: u64,
) -> (Vec<Vec<bool>>, Vec<f64>, Vec<usize>) {
    let m = players as f64;
    let size_weights: Vec<f64> =
        (1..players).map(|s| (m - 1.0) / (s as f64 * (m - s as f64))).collect();
    let total: f64 = size_weights.iter().sum();
    let mut random = SplitMix64::new(seed);
    let mut coalitions = Vec::with_capacity(2 * pairs);
    for _ in 0..pairs {
        let mut u = (random.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * total;
        let mut size = players - 1;
        for (s, w) in size_weights.iter().enumerate() {
            if u < *w {
                size = s + 1;
                break;
            }
            u -= w;
        }
        let kept = random_subset(&mut random, players, size);
        let complement = kept.iter().map(|k| !k).collect();
        coalitions.push(kept);
        coalitions.push(complement);
    }
    let clusters = (0..2 * pairs).map(|k| k / 2).collect();
    (coalitions, vec![1.0; 2 * pairs], clusters)
}

/// C(n, k) as f64 (exact for the n < 20 it is used with).
fn binomial(n: usize, k: usize) -> f64 {
    (0..k).fold(1.0, |c, i| c * (n - i) as f64 / (i + 1) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kernel_weights_of_each_size_are_its_share() {
        // Σ over coalitions of size s of the kernel weight is (m − 1) / (s (m − s)).
        let (coalitions, weights, _) = every_coalition(5);
        assert_eq!(coalitions.len(), 30);
        for size in 1..5 {
            let sum: f64 = coalitions
                .iter()
                .zip(&weights)
                .filter(|(k, _)| k.iter().filter(|&&x| x).count() == size)
                .map(|(_, w)| w)
                .sum();
            assert!((sum - 4.0 / (size * (5 - size)) as f64).abs() < 1e-12, "{size}: {sum}");
        }
    }

    #[test]
    fn sampled_pairs_are_complements_with_sizes_from_the_kernel() {
        let (coalitions, _, clusters) = sampled_pairs(10, 4000, 3);
        for pair in coalitions.chunks(2) {
            assert!(pair[0].iter().zip(&pair[1]).all(|(a, b)| a != b));
        }
        assert_eq!(clusters[..4], [0, 0, 1, 1]);
        // Sizes 1 and 9 together have probability (1/9 + 1/9) / Σ_s 1/(s (10 − s)) ≈ 0.39.
        let extreme = coalitions
            .iter()
            .step_by(2)
            .filter(|k| matches!(k.iter().filter(|&&x| x).count(), 1 | 9))
            .count() as f64
            / 4000.0;
        let harmonic: f64 = (1..10).map(|s| 1.0 / (s * (10 - s)) as f64).sum();
        let expected = 2.0 / 9.0 / harmonic;
        assert!((extreme - expected).abs() < 0.03, "{extreme} vs {expected}");
    }
}

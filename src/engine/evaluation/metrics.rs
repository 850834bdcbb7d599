//! How well one map finds an item's known evidence, and the summaries over items. Plain
//! arithmetic on scores, shared with nothing else: no method's code is used to judge methods.
//!
//! Tokens are ranked by |score|, whatever the method's sign convention, so signed and unsigned
//! methods are judged alike. Ties count against the evidence: a map that scores everything the
//! same finds nothing.

use crate::engine::runtime::random::SplitMix64;
use serde::{Deserialize, Serialize};

/// One map's result on one item (for the random baseline: the mean over draws).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ItemMetrics {
    /// 1 when the top-ranked token is evidence, else 0.
    pub hit: f64,
    /// The rank (1 = top) of the highest-ranked evidence token among the ranked positions.
    pub rank: f64,
    /// Σ |score| on evidence / Σ |score| on every ranked position (0 when all are 0).
    pub mass: f64,
}

/// `scores` (one per token) judged against `evidence`, ranking the tokens at `ranked` (the
/// evidence must be among them).
pub fn item_metrics(scores: &[f32], evidence: &[usize], ranked: &[usize]) -> ItemMetrics {
    let size = |i: usize| match scores[i] {
        s if s.is_finite() => f64::from(s).abs(),
        _ => 0.0,
    };
    let best_evidence = evidence.iter().map(|&i| size(i)).fold(0.0, f64::max);
    let above =
        ranked.iter().filter(|&i| !evidence.contains(i) && size(*i) >= best_evidence).count();
    let total: f64 = ranked.iter().map(|&i| size(i)).sum();
    let on_evidence: f64 = evidence.iter().map(|&i| size(i)).sum();
    ItemMetrics {
        hit: if above == 0 { 1.0 } else { 0.0 },
        rank: (above + 1) as f64,
        mass: if total > 0.0 { on_evidence / total } else { 0.0 },
    }
}

/// Draws of random scores per item for the baseline.
const RANDOM_DRAWS: usize = 256;

/// The mean of [`item_metrics`] over maps of independent uniform random scores: what a method
/// that knows nothing scores on this item.
pub fn random_metrics(
    len: usize,
    evidence: &[usize],
    ranked: &[usize],
    rng: &mut SplitMix64,
) -> ItemMetrics {
    let mut sum = ItemMetrics { hit: 0.0, rank: 0.0, mass: 0.0 };
    for _ in 0..RANDOM_DRAWS {
        let scores: Vec<f32> = (0..len).map(|_| (rng.next_u64() >> 40) as f32 + 1.0).collect();
        let m = item_metrics(&scores, evidence, ranked);
        sum =
            ItemMetrics { hit: sum.hit + m.hit, rank: sum.rank + m.rank, mass: sum.mass + m.mass };
    }
    let n = RANDOM_DRAWS as f64;
    ItemMetrics { hit: sum.hit / n, rank: sum.rank / n, mass: sum.mass / n }
}

/// The means over items, with 95 % bootstrap intervals.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub items: usize,
    pub hit_rate: f64,
    pub mean_rank: f64,
    pub evidence_mass: f64,
    /// Of the hit rate.
    pub ci: [f64; 2],
    pub evidence_mass_ci: [f64; 2],
}

const BOOTSTRAP_RESAMPLES: usize = 1000;

/// Summarises items' metrics; the intervals are percentile bootstraps over items (seeded).
pub fn summarise(items: &[ItemMetrics], seed: u64) -> Summary {
    let n = items.len();
    let mean = |f: fn(&ItemMetrics) -> f64| match n {
        0 => 0.0,
        _ => items.iter().map(f).sum::<f64>() / n as f64,
    };
    let mut rng = SplitMix64::new(seed);
    let (mut hits, mut masses) = (Vec::new(), Vec::new());
    if n > 0 {
        for _ in 0..BOOTSTRAP_RESAMPLES {
            let (mut hit, mut mass) = (0.0, 0.0);
            for _ in 0..n {
                let m = &items[rng.below(n as u64) as usize];
                hit += m.hit;
                mass += m.mass;
            }
            hits.push(hit / n as f64);
            masses.push(mass / n as f64);
        }
    }
    Summary {
        items: n,
        hit_rate: mean(|m| m.hit),
        mean_rank: mean(|m| m.rank),
        evidence_mass: mean(|m| m.mass),
        ci: percentile_interval(hits),
        evidence_mass_ci: percentile_interval(masses),
    }
}

/// The 2.5th and 97.5th percentiles ([0, 0] for no values).
fn percentile_interval(mut values: Vec<f64>) -> [f64; 2] {
    if values.is_empty() {
        return [0.0, 0.0];
    }
    values.sort_by(f64::total_cmp);
    let at = |q: f64| values[((values.len() - 1) as f64 * q).round() as usize];
    [at(0.025), at(0.975)]
}

#[cfg(test)]
mod tests {
    use crate::engine::evaluation::metrics::*;

    #[test]
    fn ranks_count_ties_against_the_evidence() {
        let ranked = [1, 2, 3, 4];
        let m = item_metrics(&[9.0, 0.1, -3.0, 0.5, 0.2], &[2], &ranked);
        assert_eq!((m.hit, m.rank), (1.0, 1.0));
        assert!((m.mass - 3.0 / 3.8).abs() < 1e-6);
        let m = item_metrics(&[0.0, 0.1, 0.3, 0.5, 0.3], &[2], &ranked);
        assert_eq!((m.hit, m.rank), (0.0, 3.0));
        let flat = item_metrics(&[1.0; 5], &[2, 3], &ranked);
        assert_eq!((flat.hit, flat.rank), (0.0, 3.0));
        assert_eq!(item_metrics(&[0.0; 5], &[2], &ranked).mass, 0.0);
    }

    #[test]
    fn the_random_baseline_finds_evidence_at_chance() {
        let mut rng = SplitMix64::new(1);
        let m = random_metrics(9, &[3], &(1..9).collect::<Vec<_>>(), &mut rng);
        assert!((m.hit - 1.0 / 8.0).abs() < 0.05, "{m:?}");
        assert!((m.rank - 4.5).abs() < 0.4, "{m:?}");
        assert!((m.mass - 1.0 / 8.0).abs() < 0.03, "{m:?}");
    }

    #[test]
    fn intervals_cover_the_mean_and_shrink_with_items() {
        let items = |n: usize| -> Vec<ItemMetrics> {
            (0..n).map(|i| ItemMetrics { hit: (i % 2) as f64, rank: 1.0, mass: 0.5 }).collect()
        };
        let few = summarise(&items(10), 3);
        let many = summarise(&items(400), 3);
        assert_eq!(many.hit_rate, 0.5);
        for s in [few, many] {
            assert!(s.ci[0] <= s.hit_rate && s.hit_rate <= s.ci[1], "{s:?}");
        }
        assert!(many.ci[1] - many.ci[0] < few.ci[1] - few.ci[0]);
        assert_eq!(summarise(&[], 0).ci, [0.0, 0.0]);
    }
}

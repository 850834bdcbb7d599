//! LIME (Ribeiro, Singh & Guestrin 2016), as its text explainer does it: coalitions that drop a
//! uniformly random number (1 … m − 1) of random features, weighted by closeness to the text
//! (√exp(−d² / 25²), d the cosine distance to keeping everything, × 100), and a weighted ridge
//! regression (α = 1) with an intercept; a feature's score is its coefficient. The text itself is
//! the first sample. Unlike the Shapley methods nothing makes the scores add up. Standard errors:
//! the sandwich estimator's.

use crate::engine::attribution::least_squares::{fit, Options, Row};
use crate::engine::attribution::methods::coalitions::{self, random_subset, Game, Perturbation};
use crate::engine::attribution::methods::{MethodInfo, MethodParams, Scores};
use crate::engine::error::Result;
use crate::engine::runtime::random::SplitMix64;

/// LIME's default kernel width for text, on distances scaled to 0 … 100.
const KERNEL_WIDTH: f64 = 25.0;
/// LIME's default ridge penalty.
const RIDGE: f64 = 1.0;

const INFO: MethodInfo = MethodInfo {
    name: "lime",
    label: "LIME",
    signed: true,
    target_independent: false,
    params: coalitions::PARAMS,
};

pub const LIME: Perturbation =
    Perturbation { info: &INFO, score: |game, params| Box::pin(lime(game, params)) };

async fn lime(game: &Game<'_>, params: &MethodParams) -> Result<Scores> {
    let players = game.players();
    if players == 1 {
        return Ok(game.scores(&[game.total()], Some(&[0.0]), false));
    }
    let mut random = SplitMix64::new(params.seed);
    // v(none) took one coalition of the budget; the text's own value is known.
    let coalitions: Vec<Vec<bool>> = (1..params.budget)
        .map(|_| {
            let dropped = 1 + random.below(players as u64 - 1) as usize;
            random_subset(&mut random, players, players - dropped)
        })
        .collect();
    let values = game.values(&coalitions).await?;
    let text = std::iter::once((vec![true; players], game.full));
    let rows: Vec<Row> = text
        .chain(coalitions.into_iter().zip(values))
        .enumerate()
        .map(|(k, (kept, value))| {
            let size = kept.iter().filter(|&&x| x).count() as f64;
            // cos(kept, all) = |kept| / √(|kept| · m).
            let distance = 100.0 * (1.0 - (size / players as f64).sqrt());
            Row {
                x: kept.iter().map(|&x| x as i8).collect(),
                y: value,
                weight: (-(distance * distance) / (KERNEL_WIDTH * KERNEL_WIDTH)).exp().sqrt(),
                cluster: k,
            }
        })
        .collect();
    let fit = fit(&rows, players, &Options { intercept: true, ridge: RIDGE, sampled: true })?;
    Ok(game.scores(&fit.coefficients, fit.standard_errors.as_deref(), false))
}

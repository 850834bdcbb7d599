//! Shapley value sampling (Castro, Gómez & Tejada 2009; Štrumbelj & Kononenko 2010): a
//! feature's Shapley value is its mean marginal contribution v(S ∪ {i}) − v(S) over the orders in
//! which features join, S being those before it; here over random orders. Each order's
//! contributions add up to v(all) − v(none) exactly, so the estimate is efficient by construction;
//! its standard error is the contributions' spread over orders, / √orders.

use crate::engine::attribution::methods::coalitions::{self, too_few, Game, Perturbation};
use crate::engine::attribution::methods::{MethodInfo, MethodParams, Scores};
use crate::engine::error::Result;
use crate::engine::runtime::random::SplitMix64;

const INFO: MethodInfo = MethodInfo {
    name: "shapley_sampling",
    label: "Shapley value sampling",
    signed: true,
    target_independent: false,
    params: coalitions::PARAMS,
};

pub const SHAPLEY_SAMPLING: Perturbation =
    Perturbation { info: &INFO, score: |game, params| Box::pin(shapley_sampling(game, params)) };

async fn shapley_sampling(game: &Game<'_>, params: &MethodParams) -> Result<Scores> {
    let players = game.players();
    if players == 1 {
        return Ok(game.scores(&[game.total()], Some(&[0.0]), true));
    }
    // Each order evaluates the coalitions of its first 1 … players − 1 features (v(none) and v(all)
    // are known); two orders at least, for a spread.
    let per_order = players - 1;
    let orders = (params.budget - 1) / per_order;
    if orders < 2 {
        let needed = 2 * per_order + 1;
        return Err(too_few(INFO.label, needed, players, params.features));
    }
    let mut random = SplitMix64::new(params.seed);
    let permutations: Vec<Vec<usize>> = (0..orders).map(|_| random.permutation(players)).collect();
    let coalitions: Vec<Vec<bool>> = permutations
        .iter()
        .flat_map(|order| {
            let mut kept = vec![false; players];
            order[..per_order].iter().map(move |&i| {
                kept[i] = true;
                kept.clone()
            })
        })
        .collect();
    let values = game.values(&coalitions).await?;
    let (mut sum, mut sum_squares) = (vec![0.0; players], vec![0.0; players]);
    for (order, values) in permutations.iter().zip(values.chunks(per_order)) {
        // The value after each prefix of the order: v(none), the evaluated ones, v(all).
        let after = std::iter::once(game.empty).chain(values.iter().copied()).chain([game.full]);
        let after: Vec<f64> = after.collect();
        for (k, &i) in order.iter().enumerate() {
            let contribution = after[k + 1] - after[k];
            sum[i] += contribution;
            sum_squares[i] += contribution * contribution;
        }
    }
    let n = orders as f64;
    let mean: Vec<f64> = sum.iter().map(|s| s / n).collect();
    let errors: Vec<f64> = sum_squares
        .iter()
        .zip(&mean)
        .map(|(sq, m)| ((sq / n - m * m).max(0.0) * n / (n - 1.0) / n).sqrt())
        .collect();
    Ok(game.scores(&mean, Some(&errors), true))
}

//! What the perturbation methods (KernelSHAP, LIME, Shapley value sampling) share: the text as a
//! cooperative game whose players are features (tokens, words or sentences, `params.features`),
//! where a coalition keeps its features' embeddings and every other feature's tokens take the
//! baseline's, and v(coalition) is the explained quantity there.

use crate::engine::attribution::grouping::{group, Granularity};
use crate::engine::attribution::methods::{
    AttributionMethod, MethodInfo, MethodParams, Param, Scores, ScoresFuture,
};
use crate::engine::attribution::problem::{values_work, Problem};
use crate::engine::error::{EngineError, Result};
use crate::engine::runtime::progress;
use crate::engine::runtime::random::SplitMix64;
use candle_core::Tensor;
use std::cell::Cell;
use std::ops::Range;

/// Perturbed copies held at once, in tokens (copies × sequence length): one copy per coalition
/// would be budget × seq embeddings, hundreds of MB on a long text.
pub const CHUNK_TOKENS: usize = 4096;
/// The most coalitions a run may evaluate: about ten minutes of the page's CPU path at 64 tokens.
pub const MAX_BUDGET: usize = 16384;

/// The settings every perturbation method reads.
pub const PARAMS: &[Param] = &[Param::Features, Param::Budget, Param::Baseline, Param::Seed];

/// A method that plays the game: what the page shows of it, and how it scores a problem's game
/// (the game built first, from the method's settings).
pub struct Perturbation {
    pub info: &'static MethodInfo,
    pub score: for<'a> fn(&'a Game<'a>, &'a MethodParams) -> ScoresFuture<'a>,
}

impl AttributionMethod for Perturbation {
    fn info(&self) -> &'static MethodInfo {
        self.info
    }

    fn work(&self, seq: usize, params: &MethodParams) -> u64 {
        work(seq, params)
    }

    fn attribute<'a>(
        &'a self,
        problem: &'a Problem<'_>,
        params: &'a MethodParams,
    ) -> ScoresFuture<'a> {
        Box::pin(async move {
            let game = Game::new(problem, params).await?;
            (self.score)(&game, params).await
        })
    }
}

/// The game of one problem: its features and the two ends, v(all) = f(x) and v(none) =
/// f(baseline).
pub struct Game<'p> {
    problem: &'p Problem<'p>,
    input: Tensor,
    baseline: Tensor,
    features: Vec<Range<usize>>,
    pub full: f64,
    pub empty: f64,
    evaluated: Cell<usize>,
    /// The run's progress count when the method began, and the work it was expected to do.
    started: u64,
    estimated: u64,
}

impl<'p> Game<'p> {
    /// The game of `problem` with `params`' features and baseline (one forward pass: v(none)).
    pub async fn new(problem: &'p Problem<'p>, params: &MethodParams) -> Result<Self> {
        check_budget(params.budget)?;
        let started = problem.context().progress.current().done;
        let zeros = vec![0.0; problem.len()];
        let features: Vec<Range<usize>> = group(&problem.tokens, &zeros, params.features)
            .into_iter()
            .map(|g| g.first..g.last + 1)
            .collect();
        let baseline = problem.baseline(params.baseline)?;
        let empty = problem.values(std::slice::from_ref(&baseline)).await?[0];
        let estimated = work(problem.len(), params);
        if features.len() == 1 {
            // One player's score is v(all) − v(none): nothing more to evaluate.
            let progress = &problem.context().progress;
            progress.revise(estimated, progress.current().done - started);
        }
        Ok(Self {
            problem,
            input: problem.input(),
            baseline,
            features,
            full: problem.input_value()?,
            empty,
            evaluated: Cell::new(1),
            started,
            estimated,
        })
    }

    /// How many features play.
    pub fn players(&self) -> usize {
        self.features.len()
    }

    /// v(all) − v(none): what the scores of an efficient method add up to.
    pub fn total(&self) -> f64 {
        self.full - self.empty
    }

    /// v at each coalition (`kept[j]`: feature j keeps its embeddings), in bounded batches. A
    /// method evaluates all its coalitions in one call, which first tells the run's progress the
    /// work they take.
    pub async fn values(&self, coalitions: &[Vec<bool>]) -> Result<Vec<f64>> {
        let seq = self.problem.len();
        let per_call = (CHUNK_TOKENS / seq.max(1)).max(1);
        let progress = &self.problem.context().progress;
        let calls = coalitions.chunks(per_call).map(|chunk| {
            let mut shared: Vec<usize> = chunk.iter().map(|kept| self.shared(kept)).collect();
            shared.sort_unstable();
            shared
        });
        let done = progress.current().done - self.started;
        progress.revise(self.estimated, done + values_work(calls, seq));
        let mut values = Vec::with_capacity(coalitions.len());
        for chunk in coalitions.chunks(per_call) {
            let inputs =
                chunk.iter().map(|kept| self.input_of(kept)).collect::<Result<Vec<_>>>()?;
            values.extend(self.problem.values(&inputs).await?);
        }
        self.evaluated.set(self.evaluated.get() + coalitions.len());
        Ok(values)
    }

    /// How many leading positions the coalition's input shares with the text, as
    /// `Problem::values` counts them (a replaced token whose embedding is the baseline's counts as
    /// shared there: then the estimate is a little high).
    fn shared(&self, kept: &[bool]) -> usize {
        let first_replaced =
            self.features.iter().zip(kept).find(|(_, &k)| !k).map(|(r, _)| r.start);
        first_replaced.unwrap_or(self.problem.len()).min(self.problem.len().saturating_sub(1))
    }

    /// The text with the features outside the coalition replaced by the baseline.
    fn input_of(&self, kept: &[bool]) -> Result<Tensor> {
        let mut mask = vec![0u8; self.problem.len()];
        for (range, _) in self.features.iter().zip(kept).filter(|(_, &k)| k) {
            mask[range.clone()].fill(1);
        }
        let mask = Tensor::from_vec(mask, (self.problem.len(), 1), self.input.device())?
            .broadcast_as(self.input.shape())?;
        Ok(mask.where_cond(&self.input, &self.baseline)?)
    }

    /// Per-feature scores and standard errors as per-token [`Scores`]: a feature's score (and
    /// error) is spread evenly over its tokens, so a word's tokens add up to the word's score.
    /// `efficient`: the method's scores should add up to [`Self::total`]; their gap is reported.
    pub fn scores(&self, per_feature: &[f64], errors: Option<&[f64]>, efficient: bool) -> Scores {
        let spread = |values: &[f64]| {
            let mut tokens = vec![0.0f32; self.problem.len()];
            for (range, value) in self.features.iter().zip(values) {
                let share = (value / range.len() as f64) as f32;
                tokens[range.clone()].fill(share);
            }
            tokens
        };
        let total = self.total();
        let gap = (per_feature.iter().sum::<f64>() - total).abs();
        Scores {
            values: spread(per_feature),
            completeness_error: (efficient && total != 0.0).then(|| gap / total.abs()),
            gradients: None,
            standard_errors: errors.map(spread),
            evaluations: Some(self.evaluated.get()),
        }
    }
}

/// A coalition budget within the bounds, or why not.
pub fn check_budget(budget: usize) -> Result<()> {
    if !(2..=MAX_BUDGET).contains(&budget) {
        return Err(EngineError::InvalidRequest(format!(
            "The sample budget must be between 2 and {MAX_BUDGET} coalitions (got {budget})."
        )));
    }
    Ok(())
}

/// The error for a budget too small for `players` features, with the way out.
pub fn too_few(method: &str, needed: usize, players: usize, features: Granularity) -> EngineError {
    let coarser = match features {
        Granularity::Token => " or take words or sentences as features",
        Granularity::Word => " or take sentences as features",
        Granularity::Sentence => "",
    };
    EngineError::InvalidRequest(format!(
        "{method} needs a budget of at least {needed} coalitions for {players} features; raise \
         the budget{coarser}."
    ))
}

/// The work of `budget` coalitions of a `seq`-token text, at most (the passes that continue the
/// text's keys and values compute fewer positions).
pub fn work(seq: usize, params: &MethodParams) -> u64 {
    progress::forward(params.budget.min(MAX_BUDGET), seq)
}

/// A uniformly random subset of `size` of `players`, as a coalition.
pub fn random_subset(random: &mut SplitMix64, players: usize, size: usize) -> Vec<bool> {
    // The first `size` entries of a partial Fisher-Yates shuffle.
    let mut order: Vec<usize> = (0..players).collect();
    let mut kept = vec![false; players];
    for i in 0..size {
        let j = i + random.below((players - i) as u64) as usize;
        order.swap(i, j);
        kept[order[i]] = true;
    }
    kept
}

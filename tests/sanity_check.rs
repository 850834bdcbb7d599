//! The model-randomisation sanity check (Adebayo et al. 2018): an explanation of what a trained
//! model learned must change when its learned weights are replaced by noise. Here: the saliency
//! map of the default model and of a copy with every weight re-initialised, for the same target
//! token on a long prompt, must rank the tokens differently.

mod common;
use candle_core::DType;
use common::gguf_builder::reinitialised;
use salient::engine::RunContext;
use salient::engine::{attribute, Model, Request, TargetChoice, TargetSpec};

/// Spearman rank correlation above this would mean the map mostly reflects the architecture
/// and the input, not the learned weights (Adebayo et al. flag such methods).
const MAX_RANK_CORRELATION: f64 = 0.5;
/// The trained model's saliency must vary by more than this fraction of its mean: a constant
/// map has no ranking to compare.
const MIN_RELATIVE_SPREAD: f64 = 0.1;

const PROMPT: &str = "In the small village at the foot of the mountains, the baker opened his shop every \
morning before sunrise. The children walked past it on their way to school, and the smell of fresh bread \
followed them down the road. One winter morning the shop stayed closed, and everyone wondered where the baker \
had gone, until a note appeared on the door saying that he had travelled to the city of";

/// 1-based ranks; tied values share the mean of the ranks they span.
fn ranks(values: &[f32]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|a, b| values[*a].total_cmp(&values[*b]));
    let mut ranks = vec![0.0; values.len()];
    let mut start = 0;
    while start < order.len() {
        let end = (start..order.len())
            .find(|&k| values[order[k]] != values[order[start]])
            .unwrap_or(order.len());
        let mean_rank = (start + 1 + end) as f64 / 2.0; // mean of start+1 ..= end
        order[start..end].iter().for_each(|&i| ranks[i] = mean_rank);
        start = end;
    }
    ranks
}

/// Pearson correlation of the ranks.
fn spearman(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    let (ra, rb) = (ranks(a), ranks(b));
    let mean = |r: &[f64]| r.iter().sum::<f64>() / r.len() as f64;
    let (ma, mb) = (mean(&ra), mean(&rb));
    let covariance: f64 = ra.iter().zip(&rb).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let spread = |r: &[f64], m: f64| r.iter().map(|x| (x - m).powi(2)).sum::<f64>().sqrt();
    covariance / (spread(&ra, ma) * spread(&rb, mb))
}

#[test]
fn spearman_matches_hand_computed_values() {
    let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
    assert!(close(spearman(&[1.0, 5.0, 7.0, 9.0], &[0.1, 0.2, 3.0, 40.0]), 1.0));
    assert!(close(spearman(&[1.0, 2.0, 3.0, 4.0], &[4.0, 3.0, 2.0, 1.0]), -1.0));
    // Ties: ranks (1, 2.5, 2.5, 4) against (1, 3, 2, 4) give 4.5 / √(4.5 · 5) = 3 / √10.
    assert_eq!(ranks(&[1.0, 2.0, 2.0, 3.0]), vec![1.0, 2.5, 2.5, 4.0]);
    assert!(close(spearman(&[1.0, 2.0, 2.0, 3.0], &[1.0, 3.0, 2.0, 4.0]), 3.0 / 10f64.sqrt()));
}

#[test]
fn saliency_changes_when_the_weights_are_randomised() {
    let trained = common::load_model(DType::F32);
    let randomised = Model::load(reinitialised(&common::model_bytes(), 1))
        .expect("the re-initialised copy loads");

    let mut request = Request::new(PROMPT, "saliency");
    let original = attribute(&trained, &request, &RunContext::default()).unwrap();
    // The same question of both models: the trained model's top prediction.
    request.target = TargetSpec::of(TargetChoice::Id(original.target.id));
    let random = attribute(&randomised, &request, &RunContext::default()).unwrap();
    assert_eq!(original.tokens, random.tokens, "the copy keeps the tokenizer");
    assert!(original.tokens.len() >= 40, "{} tokens", original.tokens.len());

    let scores = &original.scores;
    let mean = scores.iter().map(|s| *s as f64).sum::<f64>() / scores.len() as f64;
    let std = (scores.iter().map(|s| (*s as f64 - mean).powi(2)).sum::<f64>()
        / scores.len() as f64)
        .sqrt();
    let correlation = spearman(&original.scores, &random.scores);
    println!(
        "{} tokens, target {:?}; trained saliency mean {mean:.3e} std {std:.3e}; \
         Spearman(trained, re-initialised) = {correlation:.3}",
        scores.len(),
        original.target.text
    );
    assert!(
        std > MIN_RELATIVE_SPREAD * mean,
        "the trained model's saliency is nearly constant: {scores:?}"
    );
    assert!(
        correlation < MAX_RANK_CORRELATION,
        "rank correlation {correlation:.3} ≥ {MAX_RANK_CORRELATION}"
    );
}

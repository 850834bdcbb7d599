//! The faithfulness numbers are what they claim to be: each one is recomputed here from inputs
//! built another way (token ids with the padding token put in, embedded and run one by one),
//! in f64 so that batching cannot hide a wrong input behind rounding.

mod common;
use candle_core::{DType, Tensor, D};
use common::AttributeNow;
use salient::engine::attribution::faithfulness::measure;
use salient::engine::attribution::methods::{self, MethodParams};
use salient::engine::cpu::decoder::{CpuDecoder, Decoder};
use salient::engine::runtime::random::SplitMix64;
use salient::engine::runtime::ready::now;
use salient::engine::Baseline;
use salient::engine::RunContext;
use salient::engine::{attribute, Model, Problem, Request, TargetSpec};
use std::time::Instant;

const TEXT: &str = "The Eiffel Tower is located in the city of";
/// Tokens replaced at 10, 20 and 50 % of this 10-token text.
const SUMMARY_COUNTS: [usize; 3] = [1, 2, 5];
/// Batched and one-by-one forward passes differ only by f64 rounding (≈1e-16 relative); a wrong
/// token replaced, or a wrong average, moves p(target) by far more than this.
const TOLERANCE: f64 = 1e-9;

/// p(target) for `ids`, in a forward pass of its own (not through `Problem`).
fn p_target(model: &Model, ids: &[u32], target: u32) -> f64 {
    let embeds = CpuDecoder::of(model, &RunContext::default())
        .unwrap()
        .embed(ids)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let logits = CpuDecoder::of(model, &RunContext::default())
        .unwrap()
        .forward(&embeds)
        .unwrap()
        .last_logits;
    let probs = candle_nn::ops::softmax(&logits, D::Minus1).unwrap();
    probs.squeeze(0).unwrap().to_vec1::<f64>().unwrap()[target as usize]
}

/// The text's ids with the tokens at `replaced` swapped for the padding token.
fn with_pad_at(ids: &[u32], replaced: &[usize], pad: u32) -> Vec<u32> {
    let mut ids = ids.to_vec();
    for i in replaced {
        ids[*i] = pad;
    }
    ids
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let values: Vec<f64> = values.collect();
    values.iter().sum::<f64>() / values.len() as f64
}

#[test]
fn faithfulness_numbers_match_a_recomputation_by_hand() {
    let model = common::load_model(DType::F64);
    let problem =
        now(Problem::new(&model, TEXT, &TargetSpec::top(), None, &RunContext::default())).unwrap();
    let params = MethodParams { seed: 11, ..MethodParams::default() };
    let scores =
        methods::by_name("saliency").unwrap().attribute_now(&problem, &params).unwrap().values;
    let result = now(measure(&problem, &scores, Baseline::Pad, params.seed)).unwrap();

    let ids: Vec<u32> = problem.tokens.iter().map(|t| t.id).collect();
    assert_eq!(ids.len(), 10);
    let (target, pad) = (problem.target(), model.tokenizer.pad_token().unwrap());
    let p_x = p_target(&model, &ids, target);

    // The curve: 0 %, 10 %, …, 100 % of the 10 tokens, starting at p(x) and ending at p(all pad).
    let curve = &result.deletion_curve;
    assert_eq!(curve.len(), 11);
    for (k, (fraction, _)) in curve.iter().enumerate() {
        assert_eq!(*fraction, k as f32 / 10.0);
    }
    assert!(
        (curve[0].1 - p_x).abs() < TOLERANCE,
        "curve starts at {} but p(x) = {p_x}",
        curve[0].1
    );
    let p_all_pad = p_target(&model, &vec![pad; ids.len()], target);
    assert!(
        (curve[10].1 - p_all_pad).abs() < TOLERANCE,
        "curve ends at {} but p(all pad) = {p_all_pad}",
        curve[10].1
    );

    // Comprehensiveness and sufficiency from the top-k tokens by score, replaced or kept.
    let mut order: Vec<usize> = (0..ids.len()).collect();
    order.sort_by(|a, b| scores[*b].partial_cmp(&scores[*a]).unwrap());
    let drops = |order: &[usize], keep: bool| -> f64 {
        mean(SUMMARY_COUNTS.iter().map(|k| {
            let replaced = if keep { &order[*k..] } else { &order[..*k] };
            p_x - p_target(&model, &with_pad_at(&ids, replaced, pad), target)
        }))
    };
    let (comprehensiveness, sufficiency) = (drops(&order, false), drops(&order, true));
    assert!(
        (result.comprehensiveness - comprehensiveness).abs() < TOLERANCE,
        "{result:?} vs {comprehensiveness}"
    );
    assert!((result.sufficiency - sufficiency).abs() < TOLERANCE, "{result:?} vs {sufficiency}");
    // Every point of the curve is that many top tokens replaced.
    for (k, (_, p)) in curve.iter().enumerate() {
        let expected = p_target(&model, &with_pad_at(&ids, &order[..k], pad), target);
        assert!((p - expected).abs() < TOLERANCE, "curve point {k}: {p} vs {expected}");
    }

    // The random reference: the mean over three orders drawn from the seed.
    let mut rng = SplitMix64::new(params.seed);
    let random: Vec<Vec<usize>> = (0..3).map(|_| rng.permutation(ids.len())).collect();
    let random_comprehensiveness = mean(random.iter().map(|o| drops(o, false)));
    let random_sufficiency = mean(random.iter().map(|o| drops(o, true)));
    assert!((result.random_comprehensiveness - random_comprehensiveness).abs() < TOLERANCE);
    assert!((result.random_sufficiency - random_sufficiency).abs() < TOLERANCE);
    // Another seed draws other orders.
    let other = now(measure(&problem, &scores, Baseline::Pad, params.seed + 1)).unwrap();
    assert_ne!(other.random_comprehensiveness, result.random_comprehensiveness);
    assert_eq!(
        (other.comprehensiveness, other.sufficiency),
        (result.comprehensiveness, result.sufficiency)
    );
}

#[test]
fn the_zero_baseline_replaces_with_zero_vectors() {
    let model = common::load_model(DType::F64);
    let problem =
        now(Problem::new(&model, TEXT, &TargetSpec::top(), None, &RunContext::default())).unwrap();
    let scores: Vec<f32> = (0..problem.len()).map(|i| i as f32).collect(); // the last tokens first
    let result = now(measure(&problem, &scores, Baseline::Zero, 0)).unwrap();
    // 50 %: the last five tokens' embeddings are zero vectors.
    let input = problem.input();
    let zeros = input.narrow(0, 5, 5).unwrap().zeros_like().unwrap();
    let half = Tensor::cat(&[&input.narrow(0, 0, 5).unwrap(), &zeros], 0).unwrap();
    let expected = now(problem.probabilities_of_target(&[half])).unwrap()[0];
    assert!((result.deletion_curve[5].1 - expected).abs() < TOLERANCE, "{result:?} vs {expected}");
}

#[test]
fn saliency_on_the_eiffel_tower() {
    let model = common::load_model(DType::F32);
    let request = Request { faithfulness: true, ..Request::new(TEXT, "saliency") };
    let result = attribute(&model, &request, &RunContext::default()).unwrap();
    let f = result.faithfulness.as_ref().expect("asked for");
    eprintln!(
        "target {:?} p = {:.4}, scores {:?}",
        result.target.text, result.target.prob, result.scores
    );
    eprintln!("deletion curve {:?}", f.deletion_curve);
    eprintln!(
        "comprehensiveness {:.4} (random {:.4}), sufficiency {:.4} (random {:.4})",
        f.comprehensiveness, f.random_comprehensiveness, f.sufficiency, f.random_sufficiency
    );
    // The curve starts at the reported probability (f32: batched and single passes agree to 1e-5).
    assert!((f.deletion_curve[0].1 - result.target.prob as f64).abs() < 1e-5, "{f:?}");
    assert!(f.deletion_curve.iter().all(|(_, p)| (0.0..=1.0).contains(p)), "{f:?}");
    assert!(result.continuation.is_none());

    // What it costs next to the attribution itself (figures only: other tests share the cores).
    let started = Instant::now();
    let problem =
        now(Problem::new(&model, TEXT, &TargetSpec::top(), None, &RunContext::default())).unwrap();
    let forward = started.elapsed();
    let scores = methods::by_name("saliency")
        .unwrap()
        .attribute_now(&problem, &request.params)
        .unwrap()
        .values;
    let saliency = started.elapsed() - forward;
    let again =
        now(measure(&problem, &scores, request.params.baseline, request.params.seed)).unwrap();
    let faithfulness = started.elapsed() - forward - saliency;
    eprintln!("forward {forward:?}, saliency {saliency:?}, faithfulness (32 inputs, batched) {faithfulness:?}");
    assert_eq!(&again, f, "attribute must report measure's numbers for its own scores");
}

#[test]
fn short_texts_have_one_curve_point_per_token_count() {
    let model = common::load_model(DType::F32);
    let problem = now(Problem::new(
        &model,
        "The capital of France is",
        &TargetSpec::top(),
        None,
        &RunContext::default(),
    ))
    .unwrap();
    let scores = vec![1.0; problem.len()];
    let result = now(measure(&problem, &scores, Baseline::Pad, 0)).unwrap();
    // 5 tokens: 10 % and 20 % are both one token (0.5 rounds up), 30 % and 40 % two, and so on.
    let fractions: Vec<f32> = result.deletion_curve.iter().map(|(f, _)| *f).collect();
    assert_eq!(fractions, [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]);
    // Equal scores keep token order: 10 % and 20 % both replace "The" alone, 50 % the first three.
    let curve = &result.deletion_curve;
    let expected = (3.0 * curve[0].1 - 2.0 * curve[1].1 - curve[3].1) / 3.0;
    assert!((result.comprehensiveness - expected).abs() < 1e-12, "{result:?}");
}

#[test]
fn requests_without_the_new_fields_still_parse() {
    let json = r#"{"text": "Hi", "target": {"token": "TopPrediction"}, "method": "saliency", "top_k": 5,
                   "max_tokens": null}"#;
    let request: Request = serde_json::from_str(json).unwrap();
    assert!(!request.faithfulness);
    assert_eq!(request.continuation, None);
}

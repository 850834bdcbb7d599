//! Attention weights, attention rollout and occlusion against values computed apart from the
//! engine: on a tiny random llama, a slow plain-f64 forward pass written from the model's
//! definition gives the attention probabilities, a plain-loop matrix product gives the rollout,
//! and occlusion is rebuilt from one decoder forward pass per occluded input.

mod common;
use candle_core::{DType, Tensor};
use common::gguf_builder::{tiny_llama, TinyConfig, TinyModel, RMS_EPS, ROPE_THETA};
use common::AttributeNow;
use salient::engine::attribution::methods::{by_name, MethodParams};
use salient::engine::cpu::decoder::{CpuDecoder, Decoder};
use salient::engine::runtime::ready::now;
use salient::engine::Baseline;
use salient::engine::RunContext;
use salient::engine::{attribute, EngineError, Model, Problem, Request, TargetSpec};
use std::time::Instant;

const CONFIG: TinyConfig = TinyConfig {
    layers: 2,
    width: 16,
    heads: 4,
    kv_heads: 2,
    hidden: 32,
    context_length: 64,
    seed: 11,
};
const TEXT: &str = "the cat sat at the hat, then the rat";

/// The engine's f64 forward pass and the reference run the same few hundred flops per value in a
/// different order: they agree to rounding (≈ 1e-16), far below this.
const F64_TOLERANCE: f64 = 1e-12;
/// Method scores are f32: a value in [0, 1] rounds by at most 6e-8.
const F32_TOLERANCE: f64 = 1e-6;

/// Per layer, per head, the `(seq, seq)` attention probabilities; and the last position's logits.
struct Reference {
    attentions: Vec<Vec<Vec<Vec<f64>>>>,
    last_logits: Vec<f64>,
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// `w` (`rows × x.len()`, row-major) times `x`.
fn mat_vec(w: &[f64], x: &[f64]) -> Vec<f64> {
    w.chunks_exact(x.len()).map(|row| dot(row, x)).collect()
}

fn rms_norm(x: &[f64], gain: &[f64]) -> Vec<f64> {
    let rms = (dot(x, x) / x.len() as f64 + RMS_EPS as f64).sqrt();
    x.iter().zip(gain).map(|(v, g)| v / rms * g).collect()
}

/// Rotary positions on one head's vector: pair (2i, 2i+1) turns by position · θ^(−2i/head_dim).
fn rotate(head: &mut [f64], position: usize) {
    let dim = head.len();
    for i in 0..dim / 2 {
        let angle = position as f64 * (ROPE_THETA as f64).powf(-2.0 * i as f64 / dim as f64);
        let (a, b) = (head[2 * i], head[2 * i + 1]);
        head[2 * i] = a * angle.cos() - b * angle.sin();
        head[2 * i + 1] = a * angle.sin() + b * angle.cos();
    }
}

/// A slow llama forward pass, one position and one head at a time, from the weights alone.
fn reference_forward(tiny: &TinyModel, embeds: &[Vec<f64>]) -> Reference {
    let TinyConfig { layers, width, heads, kv_heads, .. } = tiny.config;
    let head_dim = width / heads;
    let seq = embeds.len();
    let mut x = embeds.to_vec();
    let mut attentions = Vec::new();
    for layer in 0..layers {
        let weight = |name: &str| tiny.weight(&format!("blk.{layer}.{name}.weight"));
        let (wq, wk, wv, wo) =
            (weight("attn_q"), weight("attn_k"), weight("attn_v"), weight("attn_output"));
        let h: Vec<Vec<f64>> = x.iter().map(|row| rms_norm(row, &weight("attn_norm"))).collect();
        let rotated = |w: &[f64], row: &[f64], position: usize| {
            let mut out = mat_vec(w, row);
            out.chunks_exact_mut(head_dim).for_each(|head| rotate(head, position));
            out
        };
        let q: Vec<Vec<f64>> = h.iter().enumerate().map(|(p, row)| rotated(&wq, row, p)).collect();
        let k: Vec<Vec<f64>> = h.iter().enumerate().map(|(p, row)| rotated(&wk, row, p)).collect();
        let v: Vec<Vec<f64>> = h.iter().map(|row| mat_vec(&wv, row)).collect();

        let mut probs = vec![vec![vec![0.0; seq]; seq]; heads];
        let mut mixed = vec![vec![0.0; width]; seq];
        for head in 0..heads {
            let kv = head / (heads / kv_heads); // each key/value head serves consecutive query heads
            let q_part = |i: usize| &q[i][head * head_dim..(head + 1) * head_dim];
            let kv_part = |rows: &Vec<Vec<f64>>, j: usize| {
                rows[j][kv * head_dim..(kv + 1) * head_dim].to_vec()
            };
            for i in 0..seq {
                let logits: Vec<f64> = (0..=i)
                    .map(|j| dot(q_part(i), &kv_part(&k, j)) / (head_dim as f64).sqrt())
                    .collect();
                let max = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let exps: Vec<f64> = logits.iter().map(|l| (l - max).exp()).collect();
                let total: f64 = exps.iter().sum();
                for (j, e) in exps.iter().enumerate() {
                    probs[head][i][j] = e / total;
                    for (d, value) in kv_part(&v, j).iter().enumerate() {
                        mixed[i][head * head_dim + d] += e / total * value;
                    }
                }
            }
        }
        for (row, m) in x.iter_mut().zip(&mixed) {
            row.iter_mut().zip(mat_vec(&wo, m)).for_each(|(r, o)| *r += o);
            let h = rms_norm(row, &weight("ffn_norm"));
            let gate = mat_vec(&weight("ffn_gate"), &h);
            let up = mat_vec(&weight("ffn_up"), &h);
            let act: Vec<f64> =
                gate.iter().zip(&up).map(|(g, u)| g / (1.0 + (-g).exp()) * u).collect();
            row.iter_mut().zip(mat_vec(&weight("ffn_down"), &act)).for_each(|(r, d)| *r += d);
        }
        attentions.push(probs);
    }
    let last = rms_norm(&x[seq - 1], &tiny.weight("output_norm.weight"));
    Reference { attentions, last_logits: mat_vec(&tiny.weight("output.weight"), &last) }
}

fn tiny_model() -> (TinyModel, Model) {
    let tiny = tiny_llama(CONFIG);
    let model =
        Model::load_with_dtype(tiny.bytes.clone(), DType::F64).expect("the tiny model loads");
    (tiny, model)
}

fn embeds_of(problem: &Problem) -> Vec<Vec<f64>> {
    problem.input().to_vec2::<f64>().unwrap()
}

fn scores(problem: &Problem, method: &str, params: &MethodParams) -> Vec<f64> {
    let scores = by_name(method).unwrap().attribute_now(problem, params).unwrap().values;
    assert_eq!(scores.len(), problem.len());
    scores.into_iter().map(|s| s as f64).collect()
}

fn params(layer: Option<usize>, head: Option<usize>) -> MethodParams {
    MethodParams { layer, head, ..MethodParams::default() }
}

fn max_abs_difference(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
}

fn mean_of(rows: &[Vec<f64>]) -> Vec<f64> {
    (0..rows[0].len()).map(|j| rows.iter().map(|r| r[j]).sum::<f64>() / rows.len() as f64).collect()
}

/// Layer `layer`'s reference attention `(seq, seq)` for one head or the mean over heads.
fn head_mixed(reference: &Reference, layer: usize, head: Option<usize>) -> Vec<Vec<f64>> {
    let heads = &reference.attentions[layer];
    let chosen: Vec<&Vec<Vec<f64>>> = match head {
        Some(h) => vec![&heads[h]],
        None => heads.iter().collect(),
    };
    let seq = heads[0].len();
    (0..seq)
        .map(|i| {
            (0..seq)
                .map(|j| chosen.iter().map(|m| m[i][j]).sum::<f64>() / chosen.len() as f64)
                .collect()
        })
        .collect()
}

/// Rollout by full matrix products in plain loops: R = Â_L ⋯ Â_1 with Â = ½A + ½I, rows
/// renormalised; the scores are R's last row. `layers` lists Â_1 … Â_L's layer indices.
fn reference_rollout(reference: &Reference, layers: &[usize], head: Option<usize>) -> Vec<f64> {
    let seq = reference.attentions[0][0].len();
    let mut product: Vec<Vec<f64>> =
        (0..seq).map(|i| (0..seq).map(|j| (i == j) as u8 as f64).collect()).collect();
    for &layer in layers {
        let mut mixed = head_mixed(reference, layer, head);
        for (i, row) in mixed.iter_mut().enumerate() {
            row.iter_mut().for_each(|a| *a *= 0.5);
            row[i] += 0.5;
            let total: f64 = row.iter().sum();
            row.iter_mut().for_each(|a| *a /= total);
        }
        // product ← Â_layer · product: later layers multiply from the left.
        product = (0..seq)
            .map(|i| {
                (0..seq).map(|j| (0..seq).map(|m| mixed[i][m] * product[m][j]).sum()).collect()
            })
            .collect();
    }
    product[seq - 1].clone()
}

#[test]
fn engine_forward_matches_the_reference_forward() {
    let (tiny, model) = tiny_model();
    let problem =
        now(Problem::new(&model, TEXT, &TargetSpec::top(), None, &RunContext::default())).unwrap();
    assert!(problem.len() >= 8, "the text should be several tokens: {:?}", problem.tokens);
    // The input embeddings are the token rows of the embedding matrix.
    let table = tiny.weight("token_embd.weight");
    let width = CONFIG.width;
    for (token, row) in problem.tokens.iter().zip(embeds_of(&problem)) {
        let id = token.id as usize;
        assert_eq!(row, table[id * width..(id + 1) * width].to_vec(), "embedding of token {id}");
    }

    let reference = reference_forward(&tiny, &embeds_of(&problem));
    let logits = problem.input_logits().squeeze(0).unwrap().to_vec1::<f64>().unwrap();
    let logit_error = max_abs_difference(&logits, &reference.last_logits);
    let mut attention_error: f64 = 0.0;
    for (layer, engine) in now(problem.attentions()).unwrap().iter().enumerate() {
        let engine = engine.squeeze(0).unwrap().to_vec3::<f64>().unwrap();
        for (head, rows) in engine.iter().enumerate() {
            for (i, row) in rows.iter().enumerate() {
                attention_error = attention_error
                    .max(max_abs_difference(row, &reference.attentions[layer][head][i]));
            }
        }
    }
    println!("max |logit error| {logit_error:.2e}, max |attention error| {attention_error:.2e}");
    assert!(logit_error < F64_TOLERANCE && attention_error < F64_TOLERANCE);
}

#[test]
fn attention_reads_the_chosen_layer_and_head_or_their_mean() {
    let (tiny, model) = tiny_model();
    let problem =
        now(Problem::new(&model, TEXT, &TargetSpec::top(), None, &RunContext::default())).unwrap();
    let reference = reference_forward(&tiny, &embeds_of(&problem));
    let last = problem.len() - 1;
    let (layers, heads) = (CONFIG.layers, CONFIG.heads);
    let expected = |layer: Option<usize>, head: Option<usize>| {
        let layers: Vec<usize> = layer.map_or((0..layers).collect(), |l| vec![l]);
        let heads: Vec<usize> = head.map_or((0..heads).collect(), |h| vec![h]);
        let rows: Vec<Vec<f64>> = layers
            .iter()
            .flat_map(|l| heads.iter().map(|h| reference.attentions[*l][*h][last].clone()))
            .collect();
        mean_of(&rows)
    };
    let mut choices = vec![(None, None)];
    choices.extend((0..layers).map(|l| (Some(l), None)));
    choices.extend((0..heads).map(|h| (None, Some(h))));
    choices.extend((0..layers).flat_map(|l| (0..heads).map(move |h| (Some(l), Some(h)))));
    let mut worst: f64 = 0.0;
    for (layer, head) in &choices {
        let got = scores(&problem, "attention", &params(*layer, *head));
        let error = max_abs_difference(&got, &expected(*layer, *head));
        assert!(error < F32_TOLERANCE, "layer {layer:?} head {head:?}: error {error:.2e}");
        worst = worst.max(error);
    }
    println!("attention: {} layer/head choices, max |error| {worst:.2e}", choices.len());

    // The check can fail: distinct heads give distinct rows, so a wrong head would be caught.
    let (a, b) = (expected(Some(1), Some(0)), expected(Some(1), Some(3)));
    assert!(
        max_abs_difference(&a, &b) > 100.0 * F32_TOLERANCE,
        "heads 0 and 3 attend alike: {a:?}"
    );
}

#[test]
fn rollout_equals_a_plain_loop_rollout_of_the_reference_attention() {
    let (tiny, model) = tiny_model();
    let problem =
        now(Problem::new(&model, TEXT, &TargetSpec::top(), None, &RunContext::default())).unwrap();
    let reference = reference_forward(&tiny, &embeds_of(&problem));
    let mut worst: f64 = 0.0;
    for layer in [None, Some(0), Some(1)] {
        for head in [None, Some(0), Some(2)] {
            let got = scores(&problem, "rollout", &params(layer, head));
            let through: Vec<usize> = (0..=layer.unwrap_or(CONFIG.layers - 1)).collect();
            let error = max_abs_difference(&got, &reference_rollout(&reference, &through, head));
            assert!(error < F32_TOLERANCE, "layer {layer:?} head {head:?}: error {error:.2e}");
            worst = worst.max(error);
            // Products of row-stochastic matrices are row-stochastic: the scores sum to 1.
            let total: f64 = got.iter().sum();
            assert!((total - 1.0).abs() < F32_TOLERANCE * got.len() as f64, "sum {total}");
        }
    }
    println!("rollout: max |error| {worst:.2e}");

    // The check can fail: the product in the wrong order (Â_1 · Â_2) gives other scores.
    let wrong_order = reference_rollout(&reference, &[1, 0], None);
    let error = max_abs_difference(&scores(&problem, "rollout", &params(None, None)), &wrong_order);
    println!("rollout vs wrong layer order: {error:.2e}");
    assert!(error > 100.0 * F32_TOLERANCE);
}

/// p(target) from one decoder forward pass on `embeds`.
fn probability(model: &Model, embeds: &[Vec<f64>], target: u32) -> f64 {
    let flat: Vec<f64> = embeds.concat();
    let input =
        Tensor::from_vec(flat, (1, embeds.len(), embeds[0].len()), &candle_core::Device::Cpu)
            .unwrap();
    let logits = CpuDecoder::of(model, &RunContext::default())
        .unwrap()
        .forward(&input)
        .unwrap()
        .last_logits
        .squeeze(0)
        .unwrap()
        .to_vec1::<f64>()
        .unwrap();
    let max = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let total: f64 = logits.iter().map(|l| (l - max).exp()).sum();
    (logits[target as usize] - max).exp() / total
}

#[test]
fn occlusion_is_the_change_in_p_target_when_one_token_is_replaced() {
    let (tiny, model) = tiny_model();
    let problem =
        now(Problem::new(&model, TEXT, &TargetSpec::top(), None, &RunContext::default())).unwrap();
    let embeds = embeds_of(&problem);
    let target = problem.target();
    let unoccluded = probability(&model, &embeds, target);
    let width = CONFIG.width;
    let eot = tiny.end_of_text_id() as usize;
    let pad_row = tiny.weight("token_embd.weight")[eot * width..(eot + 1) * width].to_vec();
    for (baseline, replacement) in [(Baseline::Pad, pad_row), (Baseline::Zero, vec![0.0; width])] {
        let expected: Vec<f64> = (0..embeds.len())
            .map(|i| {
                let mut occluded = embeds.clone();
                occluded[i] = replacement.clone();
                unoccluded - probability(&model, &occluded, target)
            })
            .collect();
        let got =
            scores(&problem, "occlusion", &MethodParams { baseline, ..MethodParams::default() });
        let scale = expected.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let error = max_abs_difference(&got, &expected);
        println!(
            "occlusion ({}): max |score| {scale:.3e}, max |error| {error:.2e}",
            baseline.name()
        );
        // Relative to the largest score: f32 rounding is 6e-8 of it.
        assert!(scale > 0.0 && error < F32_TOLERANCE * scale, "{got:?} vs {expected:?}");
        assert!(
            got.iter().any(|s| *s > 0.0) && got.iter().any(|s| *s < 0.0),
            "signed scores expected: {got:?}"
        );
    }
}

#[test]
fn a_layer_or_head_outside_the_model_is_an_invalid_request() {
    let (_, model) = tiny_model();
    let problem =
        now(Problem::new(&model, TEXT, &TargetSpec::top(), None, &RunContext::default())).unwrap();
    for method in ["attention", "rollout"] {
        let attribute =
            |layer, head| by_name(method).unwrap().attribute_now(&problem, &params(layer, head));
        assert!(attribute(Some(CONFIG.layers - 1), Some(CONFIG.heads - 1)).is_ok());
        for (layer, head, range) in [
            (Some(2), None, "layer 2: this model has 2 layers, numbered 0 to 1"),
            (None, Some(4), "head 4: this model has 4 heads, numbered 0 to 3"),
        ] {
            match attribute(layer, head) {
                Err(EngineError::InvalidRequest(message)) => {
                    assert!(message.contains(range), "{method}: {message}")
                }
                other => panic!("{method} with layer {layer:?} head {head:?}: {other:?}"),
            }
        }
    }
}

/// On the default model: each method gives one finite score per token, with the sign convention
/// it declares. Times are printed for the report.
#[test]
fn the_methods_run_on_the_default_model() {
    let model = common::load_model(DType::F32);
    let text = "The Eiffel Tower is located in the city of";
    for method in ["attention", "rollout", "occlusion"] {
        let start = Instant::now();
        let result =
            attribute(&model, &Request::new(text, method), &RunContext::default()).unwrap();
        println!(
            "{method}: {:?} for {} tokens, scores {:?}",
            start.elapsed(),
            result.tokens.len(),
            result.scores
        );
        assert_eq!(result.scores.len(), result.tokens.len());
        assert!(result.scores.iter().all(|s| s.is_finite()));
        assert_eq!(result.signed, method == "occlusion");
        if !result.signed {
            assert!(
                result.scores.iter().all(|s| (0.0..=1.0 + 1e-6).contains(s)),
                "{:?}",
                result.scores
            );
            let total: f32 = result.scores.iter().sum();
            assert!((total - 1.0).abs() < 1e-4, "{method}: scores sum to {total}, not 1");
        }
    }
}

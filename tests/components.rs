//! Component attribution on tiny random llama, qwen2 and gpt2 models (f64): the explained logit
//! equals the plain-f64 reference forward pass's, the components add up to it (the decomposition
//! identity), each head's share equals the reference's head output read through the final norm
//! (computed here from the definitions), the logit lens's last layer is the model's own output,
//! and the token × layer map's first row is gradient × input (for gpt2, on the embeddings plus
//! positions).

mod common;
use candle_core::DType;
use common::gguf_builder::{tiny_model, Family, TinyConfig, TinyModel, LAYER_NORM_EPS, RMS_EPS};
use common::reference::{self, EXACT};
use common::AttributeNow;
use salient::engine::attribution::components::{components, ComponentKind, Components};
use salient::engine::attribution::methods::{by_name, MethodParams};
use salient::engine::runtime::ready::now;
use salient::engine::{Model, Problem, RunContext, TargetChoice, TargetSpec};

const FAMILIES: [Family; 3] = [Family::Llama, Family::Qwen2, Family::Gpt2];
const TEXT: &str = "the cat sat at the hat";

fn config(family: Family) -> TinyConfig {
    let kv_heads = if family == Family::Gpt2 { 4 } else { 2 };
    TinyConfig { layers: 3, width: 16, heads: 4, kv_heads, hidden: 32, context_length: 24, seed: 9 }
}

/// `check` on each family's tiny model, on the problem of [`TEXT`] with `foils` (each: none, or
/// a foil), and that problem's component attribution.
fn for_each_problem(
    foils: &[Option<TargetChoice>],
    mut check: impl FnMut(&TinyModel, &Problem, &Components),
) {
    for family in FAMILIES {
        let tiny = tiny_model(family, config(family));
        let model = Model::load_with_dtype(tiny.bytes.clone(), DType::F64).unwrap();
        for foil in foils {
            let spec = TargetSpec { foil: foil.clone(), ..TargetSpec::top() };
            let problem =
                now(Problem::new(&model, TEXT, &spec, None, &RunContext::default())).unwrap();
            check(&tiny, &problem, &components(&problem).unwrap());
        }
    }
}

#[test]
fn components_add_up_to_the_reference_logit() {
    for_each_problem(&[None, Some(TargetChoice::Id(3))], |tiny, problem, result| {
        let (family, foil) = (tiny.family, problem.objective.foil);
        let embeds = problem.input().to_vec2::<f64>().unwrap();
        let logits =
            reference::forward(family, &tiny.config, &tiny.weights(), &embeds, EXACT).last_logits;
        let (t, f) = (problem.objective.target as usize, problem.objective.foil);
        let expected = logits[t] - f.map_or(0.0, |f| logits[f as usize]);
        let scale = result.components.iter().fold(0.0f64, |m, c| m.max(c.value.abs()));
        println!(
            "{family:?} foil {foil:?}: logit {:.6}, residual {:.1e}",
            result.logit, result.residual
        );
        assert!((result.logit - expected).abs() < 1e-9, "{} vs {expected}", result.logit);
        assert!(result.residual.abs() < 1e-9 * scale.max(1.0), "{}", result.residual);
        // One entry per head and block; the embedding once; biases where the family has them.
        let count = |kind| result.components.iter().filter(|c| c.kind == kind).count();
        assert_eq!(count(ComponentKind::Head), 3 * 4);
        assert_eq!(count(ComponentKind::Mlp), 3);
        assert_eq!(count(ComponentKind::Embed), 1);
        let final_norm_bias =
            result.components.iter().any(|c| c.kind == ComponentKind::Bias && c.layer.is_none());
        assert_eq!(final_norm_bias, family == Family::Gpt2);
        // Heads 0–1 share key/value head 0 where there are 2 for 4 query heads.
        let kv: Vec<_> = result
            .components
            .iter()
            .filter(|c| c.layer == Some(0))
            .filter_map(|c| c.kv_head)
            .collect();
        let expected_kv = if family == Family::Gpt2 { vec![0, 1, 2, 3] } else { vec![0, 0, 1, 1] };
        assert_eq!(kv, expected_kv);
        // A head's attention from the last position is a distribution over the tokens.
        for heads in &result.attention {
            for row in heads {
                assert_eq!(row.len(), problem.len());
                assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
            }
        }
    });
}

#[test]
fn the_logit_lens_ends_at_the_model_s_output() {
    for_each_problem(&[None], |_, problem, result| {
        assert_eq!(result.logit_lens.len(), 3);
        let last = result.logit_lens.last().unwrap();
        let target = problem.objective.target;
        assert_eq!((last.layer, last.rank), (2, 0), "the target is the top prediction");
        assert!((last.prob - problem.probs[target as usize]).abs() < 1e-6);
        assert_eq!(last.top[0].id, target);
        assert!(last.top.windows(2).all(|w| w[0].prob >= w[1].prob));
        // Earlier layers read other distributions.
        assert!(result.logit_lens.iter().any(|l| (l.prob - last.prob).abs() > 1e-4));
    });
}

#[test]
fn the_first_row_of_the_layer_map_is_gradient_times_input() {
    for_each_problem(&[None], |tiny, problem, result| {
        let family = tiny.family;
        assert_eq!(result.layer_saliency.len(), 3);
        assert!(result.layer_saliency.iter().all(|row| row.len() == problem.len()));
        let grad_x_input = by_name("grad_x_input")
            .unwrap()
            .attribute_now(problem, &MethodParams::default())
            .unwrap()
            .values;
        let row = &result.layer_saliency[0];
        let scale = grad_x_input.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let gap = row.iter().zip(&grad_x_input).fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
        match family {
            // The first block reads the token embeddings: the same numbers.
            Family::Llama | Family::Qwen2 => {
                assert!(gap < 1e-5 * scale, "{row:?} vs {grad_x_input:?}")
            }
            // gpt2's first block reads embeddings plus positions: positions add their share.
            Family::Gpt2 => assert!(gap > 1e-3 * scale, "{row:?} vs {grad_x_input:?}"),
        }
        // Deeper rows differ from the first.
        assert_ne!(result.layer_saliency[1], result.layer_saliency[0]);
    });
}

/// The reference's readout of the explained logit's direction: how the final norm (its scale
/// held) and the unembedding read what a head writes at the last position.
fn reference_readout(
    tiny: &common::gguf_builder::TinyModel,
    stream: &[f64],
    ids: &[u32],
) -> Vec<f64> {
    let width = tiny.config.width;
    let unembedding =
        tiny.weights()("output.weight").unwrap_or_else(|| tiny.weight("token_embd.weight"));
    let row = |id: u32| unembedding[id as usize * width..(id as usize + 1) * width].to_vec();
    let mut direction = row(ids[0]);
    if let Some(&foil) = ids.get(1) {
        direction.iter_mut().zip(row(foil)).for_each(|(d, f)| *d -= f);
    }
    let gain = tiny.weight("output_norm.weight");
    let n = width as f64;
    match tiny.family {
        Family::Gpt2 => {
            let mean = stream.iter().sum::<f64>() / n;
            let var = stream.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
            let scaled: Vec<f64> = direction
                .iter()
                .zip(&gain)
                .map(|(d, g)| d * g / (var + LAYER_NORM_EPS as f64).sqrt())
                .collect();
            let centre = scaled.iter().sum::<f64>() / n;
            scaled.iter().map(|s| s - centre).collect()
        }
        _ => {
            let rms = (stream.iter().map(|x| x * x).sum::<f64>() / n + RMS_EPS as f64).sqrt();
            direction.iter().zip(&gain).map(|(d, g)| d * g / rms).collect()
        }
    }
}

#[test]
fn each_head_s_share_is_its_reference_output_read_through_the_final_norm() {
    for_each_problem(&[None, Some(TargetChoice::Id(3))], |tiny, problem, result| {
        let family = tiny.family;
        let embeds = problem.input().to_vec2::<f64>().unwrap();
        let reference = reference::forward(family, &tiny.config, &tiny.weights(), &embeds, EXACT);
        let ids: Vec<u32> =
            std::iter::once(problem.objective.target).chain(problem.objective.foil).collect();
        let readout = reference_readout(tiny, &reference.last_stream, &ids);
        let mut checked = 0;
        for c in result.components.iter().filter(|c| c.kind == ComponentKind::Head) {
            let (layer, head) = (c.layer.unwrap(), c.head.unwrap());
            let output = &reference.head_outputs[layer][head];
            let expected: f64 = readout.iter().zip(output).map(|(u, o)| u * o).sum();
            assert!(
                (c.value - expected).abs() < 1e-9 * (1.0 + expected.abs()),
                "{family:?} L{layer} H{head}: {} vs {expected}",
                c.value
            );
            checked += 1;
        }
        assert_eq!(checked, 12);
        // The heads differ: a split that gave each the block's mean would fail above.
        let values: Vec<f64> = result
            .components
            .iter()
            .filter(|c| c.kind == ComponentKind::Head)
            .map(|c| c.value)
            .collect();
        assert!(values.windows(2).any(|w| (w[0] - w[1]).abs() > 1e-6));
    });
}

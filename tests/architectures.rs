//! The llama, qwen2 and gpt2 decoders against an independent definition: on tiny random models
//! (F32 weights, so the file holds exactly what the reference reads), the engine's logits and
//! attention probabilities equal a plain-loop f64 forward pass, and its input gradient equals
//! central finite differences. Deliberately wrong references (other rotary layout, no biases)
//! disagree, so the comparison can fail. Also: the pre-tokenizers of Qwen2 and Llama 3 split text
//! as their regexes say, and gpt2 refuses positions it has no embedding for.

mod common;
use candle_core::quantized::gguf_file::Value;
use candle_core::{DType, Tensor};
use common::gguf_builder::{
    rewritten, tiny_model, with_metadata, without_tensor, Family, TinyConfig, TinyModel,
};
use common::reference::{self, Reference, Variant, EXACT};
use salient::engine::cpu::decoder::{CpuDecoder, Decoder};
use salient::engine::cpu::gradient::value_and_gradient_in_segments;
use salient::engine::model::tokenizer::pre_tokenize;
use salient::engine::runtime::ready::now;
use salient::engine::RunContext;
use salient::engine::{EngineError, Model, Problem, TargetSpec};

const FAMILIES: [Family; 3] = [Family::Llama, Family::Qwen2, Family::Gpt2];
const TEXT: &str = "the cat sat at the hat, then the rat";

/// Engine (f64) and reference run the same few hundred flops per value in different orders:
/// they agree to rounding (≈ 1e-15), far below this.
const F64_TOLERANCE: f64 = 1e-12;
/// The f32 engine against the f64 reference: f32 rounding (6e-8 relative) over two layers of
/// width 16 stays below this on O(1) values.
const F32_TOLERANCE: f64 = 1e-4;
/// Central-difference step (embedding rows have norm ≈ 4 here, as in the real model's scale).
const STEP: f64 = 1e-4;
/// |FD − ∇f·v| must be below this fraction of |∇f|·|v|: the truncation error is O(STEP²) ≈ 1e-8
/// times third derivatives of order 1, and a missing or extra term is off by far more.
const GRADIENT_TOLERANCE: f64 = 1e-8;

fn config(family: Family) -> TinyConfig {
    let kv_heads = if family == Family::Gpt2 { 4 } else { 2 };
    TinyConfig {
        layers: 2,
        width: 16,
        heads: 4,
        kv_heads,
        hidden: 32,
        context_length: 24,
        seed: 17,
    }
}

fn load(tiny: &TinyModel, dtype: DType) -> Model {
    Model::load_with_dtype(tiny.bytes.clone(), dtype)
        .unwrap_or_else(|e| panic!("{:?} loads: {e}", tiny.family))
}

fn max_abs_difference(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
}

/// Largest differences of (logits, attention probabilities) between the engine's forward pass in
/// `problem` and `reference`.
fn errors(problem: &Problem, reference: &Reference) -> (f64, f64) {
    let logits = problem
        .input_logits()
        .squeeze(0)
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
        .to_vec1::<f64>()
        .unwrap();
    let mut attention_error: f64 = 0.0;
    for (layer, probs) in now(problem.attentions()).unwrap().iter().enumerate() {
        let probs =
            probs.squeeze(0).unwrap().to_dtype(DType::F64).unwrap().to_vec3::<f64>().unwrap();
        for (head, rows) in probs.iter().enumerate() {
            for (i, row) in rows.iter().enumerate() {
                attention_error = attention_error
                    .max(max_abs_difference(row, &reference.attentions[layer][head][i]));
            }
        }
    }
    (max_abs_difference(&logits, &reference.last_logits), attention_error)
}

fn reference_for(tiny: &TinyModel, problem: &Problem, variant: Variant) -> Reference {
    let embeds = problem.input().to_dtype(DType::F64).unwrap().to_vec2::<f64>().unwrap();
    reference::forward(tiny.family, &tiny.config, &tiny.weights(), &embeds, variant)
}

#[test]
fn every_family_computes_its_definition() {
    for family in FAMILIES {
        let tiny = tiny_model(family, config(family));
        let model = load(&tiny, DType::F64);
        assert_eq!(model.config().architecture, family.name());
        let problem =
            now(Problem::new(&model, TEXT, &TargetSpec::top(), None, &RunContext::default()))
                .unwrap();
        assert!(problem.len() >= 12, "the text should be many tokens: {:?}", problem.tokens);
        // The inputs are the token rows of the embedding matrix (gpt2 adds positions inside).
        let table = tiny.weight("token_embd.weight");
        let width = tiny.config.width;
        for (token, row) in problem.tokens.iter().zip(problem.input().to_vec2::<f64>().unwrap()) {
            let id = token.id as usize;
            assert_eq!(
                row,
                table[id * width..(id + 1) * width].to_vec(),
                "{family:?}: embedding of token {id}"
            );
        }
        let (logit_error, attention_error) =
            errors(&problem, &reference_for(&tiny, &problem, EXACT));
        println!("{family:?} f64: max |logit error| {logit_error:.2e}, max |attention error| {attention_error:.2e}");
        assert!(logit_error < F64_TOLERANCE && attention_error < F64_TOLERANCE, "{family:?}");

        let model = load(&tiny, DType::F32);
        let problem =
            now(Problem::new(&model, TEXT, &TargetSpec::top(), None, &RunContext::default()))
                .unwrap();
        let (logit_error, attention_error) =
            errors(&problem, &reference_for(&tiny, &problem, EXACT));
        println!("{family:?} f32: max |logit error| {logit_error:.2e}, max |attention error| {attention_error:.2e}");
        assert!(logit_error < F32_TOLERANCE && attention_error < F32_TOLERANCE, "{family:?}");
    }
}

#[test]
fn a_wrong_rotary_layout_or_a_missing_bias_is_noticed() {
    let flipped = Variant { flip_rope: true, ..EXACT };
    let unbiased = Variant { drop_biases: true, ..EXACT };
    for (family, variant) in [
        (Family::Llama, flipped),
        (Family::Qwen2, flipped),
        (Family::Qwen2, unbiased),
        (Family::Gpt2, unbiased),
    ] {
        let tiny = tiny_model(family, config(family));
        let model = load(&tiny, DType::F64);
        let problem =
            now(Problem::new(&model, TEXT, &TargetSpec::top(), None, &RunContext::default()))
                .unwrap();
        let (logit_error, attention_error) =
            errors(&problem, &reference_for(&tiny, &problem, variant));
        println!("{family:?} against {variant:?}: logits {logit_error:.2e}, attention {attention_error:.2e}");
        // Six orders of magnitude above the tolerance: the comparison above cannot miss these.
        assert!(logit_error > 1e6 * F64_TOLERANCE, "{family:?} {variant:?}");
        assert!(attention_error > 1e6 * F64_TOLERANCE, "{family:?} {variant:?}");
    }
}

/// The largest relative error of `problem`'s input gradient against central differences of f
/// along `directions` random unit directions.
fn gradient_error(problem: &Problem, directions: usize, seed: u64) -> f64 {
    let grad = now(problem.input_gradient()).unwrap();
    let grad_norm =
        grad.sqr().unwrap().sum_all().unwrap().sqrt().unwrap().to_scalar::<f64>().unwrap();
    let x = problem.input();
    let mut rng = common::Rng::new(seed);
    (0..directions)
        .map(|_| {
            let v: Vec<f64> = (0..x.elem_count()).map(|_| rng.normal()).collect();
            let v = Tensor::from_vec(v, x.shape(), x.device()).unwrap();
            let v = v.broadcast_div(&v.sqr().unwrap().sum_all().unwrap().sqrt().unwrap()).unwrap();
            let f = now(problem.values(&[
                (&x + (&v * STEP).unwrap()).unwrap(),
                (&x - (&v * STEP).unwrap()).unwrap(),
            ]))
            .unwrap();
            let finite_difference = (f[0] - f[1]) / (2.0 * STEP);
            let analytic = (&grad * &v).unwrap().sum_all().unwrap().to_scalar::<f64>().unwrap();
            (finite_difference - analytic).abs() / grad_norm
        })
        .fold(0.0, f64::max)
}

#[test]
fn input_gradients_match_finite_differences() {
    for family in FAMILIES {
        let tiny = tiny_model(family, config(family));
        let model = load(&tiny, DType::F64);
        let problem =
            now(Problem::new(&model, TEXT, &TargetSpec::top(), None, &RunContext::default()))
                .unwrap();
        let error = gradient_error(&problem, 4, 23);
        println!("{family:?}: max relative gradient error {error:.2e}");
        assert!(error < GRADIENT_TOLERANCE, "{family:?}: {error:.2e}");
    }
}

#[test]
fn segmented_gradients_equal_the_whole_graph_s() {
    // Long texts take the gradient a segment of blocks at a time (recomputing each segment's
    // forward pass); any segmentation must give the same function's gradient. Four layers allow
    // segments of 1, 2 and 3 (uneven) blocks.
    for family in FAMILIES {
        let tiny = tiny_model(family, TinyConfig { layers: 4, ..config(family) });
        let model = load(&tiny, DType::F64);
        let problem =
            now(Problem::new(&model, TEXT, &TargetSpec::top(), None, &RunContext::default()))
                .unwrap();
        let embeds = Tensor::stack(
            &[problem.input(), problem.baseline(salient::engine::Baseline::Zero).unwrap()],
            0,
        )
        .unwrap();
        let run = |per_segment| {
            let (values, gradient) = value_and_gradient_in_segments(
                &CpuDecoder::of(&model, &RunContext::default()).unwrap(),
                &embeds,
                per_segment,
                |logits| problem.objective.score(logits),
            )
            .unwrap();
            (
                values.to_vec1::<f64>().unwrap(),
                gradient.flatten_all().unwrap().to_vec1::<f64>().unwrap(),
            )
        };
        let (whole_values, whole) = run(4);
        let scale = whole.iter().fold(0.0f64, |m, g| m.max(g.abs()));
        assert!(scale > 0.0);
        for per_segment in [1, 2, 3] {
            let (values, gradient) = run(per_segment);
            let error = max_abs_difference(&gradient, &whole) / scale;
            println!(
                "{family:?}, segments of {per_segment}: relative gradient difference {error:.2e}"
            );
            assert_eq!(
                values, whole_values,
                "{family:?}: the values come from the same forward pass"
            );
            assert!(error < F64_TOLERANCE, "{family:?}, segments of {per_segment}: {error:.2e}");
        }
    }
}

/// Inputs equal to the text in their first positions continue its keys and values there
/// (`Problem::values` batches them by the prefix they share). Each value must equal a whole
/// forward pass on that input, in every family: the continued positions keep their rotations and
/// GPT-2's learned positions. Many inputs per prefix make several batches with different prefixes.
#[test]
fn values_continuing_the_text_s_prefix_equal_whole_passes() {
    for family in FAMILIES {
        let tiny = tiny_model(family, config(family));
        let model = load(&tiny, DType::F64);
        let problem =
            now(Problem::new(&model, TEXT, &TargetSpec::top(), None, &RunContext::default()))
                .unwrap();
        let (x, seq) = (problem.input(), problem.len());
        let width = x.dim(1).unwrap();
        let inputs: Vec<Tensor> = (1..=seq)
            .flat_map(|from| (0..6).map(move |copy| (from, copy)))
            .map(|(from, copy)| match from {
                _ if from == seq => x.clone(), // unchanged: only the last position is computed
                _ => {
                    let changed = (x.narrow(0, from, seq - from).unwrap()
                        * (0.3 + 0.1 * copy as f64))
                        .unwrap();
                    x.slice_assign(&[from..seq, 0..width], &changed).unwrap()
                }
            })
            .collect();
        let values = now(problem.values(&inputs)).unwrap();
        let mut error: f64 = 0.0;
        for (input, value) in inputs.iter().zip(&values) {
            let logits = CpuDecoder::of(&model, &RunContext::default())
                .unwrap()
                .forward(&input.unsqueeze(0).unwrap())
                .unwrap()
                .last_logits;
            let whole = problem.objective.score(&logits).unwrap().to_vec1::<f64>().unwrap()[0];
            error = error.max((value - whole).abs());
        }
        let spread = values.iter().fold(0.0f64, |m, v| m.max((v - values[0]).abs()));
        println!(
            "{family:?}: {} inputs, max |error| {error:.2e}, spread of values {spread:.2e}",
            inputs.len()
        );
        assert!(spread > 1e-6, "{family:?}: the inputs should change the value");
        assert!(error < F64_TOLERANCE, "{family:?}: {error:.2e}");
    }
}

#[test]
fn gpt2_refuses_positions_past_its_context() {
    let tiny = tiny_model(Family::Gpt2, config(Family::Gpt2));
    let model = load(&tiny, DType::F32);
    let context = tiny.config.context_length;
    let long = "the cat ".repeat(context);
    match model.tokenize_input(&long, None) {
        Err(EngineError::TextTooLong { max, .. }) => assert_eq!(max, context),
        other => panic!("expected TextTooLong, got {other:?}"),
    }
    // The decoder itself refuses too (callers such as continuations build token lists directly).
    let ids = vec![0u32; context + 1];
    let embeds = CpuDecoder::of(&model, &RunContext::default())
        .unwrap()
        .embed(&ids)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let error = CpuDecoder::of(&model, &RunContext::default())
        .unwrap()
        .forward(&embeds)
        .err()
        .expect("no position embedding past the context");
    println!("{error}");
    assert!(matches!(error, EngineError::TextTooLong { tokens, .. } if tokens == context + 1));
    // Exactly the context still runs.
    let embeds = CpuDecoder::of(&model, &RunContext::default())
        .unwrap()
        .embed(&ids[..context])
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    assert!(CpuDecoder::of(&model, &RunContext::default()).unwrap().forward(&embeds).is_ok());
}

#[test]
fn qwen2_needs_its_attention_biases() {
    let tiny = tiny_model(Family::Qwen2, config(Family::Qwen2));
    let error =
        Model::load(without_tensor(&tiny.bytes, "blk.1.attn_k.bias")).err().expect("loading fails");
    println!("{error}");
    assert!(
        matches!(&error, EngineError::MissingTensor(name) if name == "blk.1.attn_k.bias"),
        "{error}"
    );
}

#[test]
fn pre_tokenizers_split_as_their_regexes_say() {
    let text = "Hello world's 12345 东京\n\n  x";
    let other = "WE'LL go(hello!!\n\nok";
    // Derived by hand from each regex, alternative by alternative (see tokenizer.rs): Llama 3
    // keeps up to three digits together, Qwen2 one; both take an upper-case contraction, one
    // leading non-letter into a word, and newlines after punctuation; GPT-2 does none of these
    // and gives a newline run all but the last space.
    let cases: [(&str, &str, &[&str]); 6] = [
        (
            "llama-bpe",
            text,
            &["Hello", " world", "'s", " ", "123", "45", " 东京", "\n\n", " ", " x"],
        ),
        (
            "qwen2",
            text,
            &["Hello", " world", "'s", " ", "1", "2", "3", "4", "5", " 东京", "\n\n", " ", " x"],
        ),
        ("gpt2", text, &["Hello", " world", "'s", " 12345", " 东京", "\n\n ", " x"]),
        ("llama-bpe", other, &["WE", "'LL", " go", "(hello", "!!\n\n", "ok"]),
        ("qwen2", other, &["WE", "'LL", " go", "(hello", "!!\n\n", "ok"]),
        ("gpt2", other, &["WE", "'", "LL", " go", "(", "hello", "!!", "\n", "\n", "ok"]),
    ];
    for (pre, text, expected) in cases {
        let pieces = pre_tokenize(pre, text).unwrap();
        println!("{pre}: {pieces:?}");
        assert_eq!(pieces, expected, "{pre} on {text:?}");
    }
}

#[test]
fn a_beginning_of_text_id_outside_the_vocabulary_is_refused() {
    let tiny = tiny_model(Family::Llama, config(Family::Llama));
    // 2³² + a valid id once narrowed to that id silently.
    for id in [1u64 << 32, (1u64 << 32) + tiny.end_of_text_id() as u64, u64::MAX] {
        let bytes = with_metadata(
            &tiny.bytes,
            &[
                ("tokenizer.ggml.bos_token_id", Value::U64(id)),
                ("tokenizer.ggml.add_bos_token", Value::Bool(true)),
            ],
        );
        let message = Model::load(bytes).err().expect("loading fails").to_string();
        assert!(
            message.contains("beginning-of-text token") && message.contains(&id.to_string()),
            "{message}"
        );
    }
}

#[test]
fn weights_that_are_not_numbers_give_a_message_not_nan_scores() {
    let tiny = tiny_model(Family::Llama, config(Family::Llama));
    let damaged = rewritten(&tiny.bytes, &[], |name, mut values, dims| {
        if name == "blk.0.ffn_down.weight" {
            values[3] = f32::NAN;
        }
        let dense = Tensor::from_vec(values, dims, &candle_core::Device::Cpu).unwrap();
        Some(
            candle_core::quantized::QTensor::quantize(
                &dense,
                candle_core::quantized::GgmlDType::F32,
            )
            .unwrap(),
        )
    });
    let model = Model::load(damaged).expect("a NaN weight is not visible until it is used");
    let message = now(Problem::new(&model, TEXT, &TargetSpec::top(), None, &RunContext::default()))
        .err()
        .expect("the run fails")
        .to_string();
    assert!(message.contains("not numbers"), "{message}");
}

#[test]
fn an_unknown_pre_tokenizer_is_refused_by_name() {
    let tiny = tiny_model(Family::Llama, config(Family::Llama));
    let bytes = with_metadata(
        &tiny.bytes,
        &[("tokenizer.ggml.pre", Value::String("no-such-split".into()))],
    );
    let message = Model::load(bytes).err().expect("loading fails").to_string();
    println!("{message}");
    assert!(message.contains("\"no-such-split\"") && message.contains("qwen2"), "{message}");
}

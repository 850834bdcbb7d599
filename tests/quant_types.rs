//! Weight encodings: the same tiny llama, its matrices written in each encoding the engine
//! supports, loads and computes exactly the function its dequantized weights define (the
//! reference reads them through candle's own `QTensor::dequantize`, apart from the engine's
//! row-block path), and the same bit for bit with its weights kept decoded. A tensor in any other
//! encoding is refused at load time, by name.

mod common;
use candle_core::quantized::gguf_file::Content;
use candle_core::quantized::GgmlDType;
use candle_core::{DType, Device};
use common::gguf_builder::{tiny_llama, with_matrices_in, with_type_id, Family, TinyConfig};
use common::reference::{self, EXACT};
use salient::engine::model::weights::{WeightStorage, SUPPORTED_ENCODINGS};
use salient::engine::runtime::ready::now;
use salient::engine::RunContext;
use salient::engine::{explain, EngineError, MethodParams, Model, Problem, TargetSpec};
use std::collections::HashMap;
use std::io::Cursor;

/// Width and MLP width 256: every row fills whole K-quant blocks (256 values).
const CONFIG: TinyConfig = TinyConfig {
    layers: 2,
    width: 256,
    heads: 4,
    kv_heads: 2,
    hidden: 256,
    context_length: 64,
    seed: 29,
};
const TEXT: &str = "the cat sat at the hat";

/// Each encoding the engine claims to support, with ggml's name for it.
const ENCODINGS: [(GgmlDType, &str); 13] = [
    (GgmlDType::F32, "F32"),
    (GgmlDType::F16, "F16"),
    (GgmlDType::BF16, "BF16"),
    (GgmlDType::Q8_0, "Q8_0"),
    (GgmlDType::Q4_0, "Q4_0"),
    (GgmlDType::Q4_1, "Q4_1"),
    (GgmlDType::Q5_0, "Q5_0"),
    (GgmlDType::Q5_1, "Q5_1"),
    (GgmlDType::Q2K, "Q2_K"),
    (GgmlDType::Q3K, "Q3_K"),
    (GgmlDType::Q4K, "Q4_K"),
    (GgmlDType::Q5K, "Q5_K"),
    (GgmlDType::Q6K, "Q6_K"),
];

/// The f64 engine and the reference use identical weights (both are candle's f32 dequantization,
/// widened) and differ only in summation order over rows of 256: ≈ 1e-14 of the logit scale.
const F64_TOLERANCE: f64 = 1e-11;
/// The f32 engine: f32 rounding (6e-8) accumulated over two layers of width 256.
const F32_TOLERANCE: f64 = 1e-4;

/// Every tensor of a GGUF file as candle dequantizes it, widened to f64.
fn dequantized(bytes: &[u8]) -> HashMap<String, Vec<f64>> {
    let mut reader = Cursor::new(bytes);
    let content = Content::read(&mut reader).unwrap();
    let names: Vec<String> = content.tensor_infos.keys().cloned().collect();
    names
        .into_iter()
        .map(|name| {
            let tensor = content.tensor(&mut reader, &name, &Device::Cpu).unwrap();
            let dense = tensor.dequantize(&Device::Cpu).unwrap().flatten_all().unwrap();
            (name, dense.to_dtype(DType::F64).unwrap().to_vec1::<f64>().unwrap())
        })
        .collect()
}

/// Largest |a − b| over the largest |b|.
fn relative_error(a: &[f64], b: &[f64]) -> f64 {
    let scale = b.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max) / scale
}

fn engine_logits(bytes: &[u8], dtype: DType) -> (Vec<u32>, Vec<Vec<f64>>, Vec<f64>) {
    let model = Model::load_with_dtype(bytes.to_vec(), dtype).unwrap();
    let problem =
        now(Problem::new(&model, TEXT, &TargetSpec::top(), None, &RunContext::default())).unwrap();
    let ids = problem.tokens.iter().map(|t| t.id).collect();
    let embeds = problem.input().to_dtype(DType::F64).unwrap().to_vec2::<f64>().unwrap();
    let logits = problem.input_logits().squeeze(0).unwrap().to_dtype(DType::F64).unwrap();
    (ids, embeds, logits.to_vec1::<f64>().unwrap())
}

/// The f32 engine's logits and saliency scores, as bits.
fn f32_results(bytes: &[u8], storage: WeightStorage) -> (Vec<u32>, Vec<u32>) {
    let model = Model::load_with(bytes.to_vec(), DType::F32, storage).unwrap();
    let problem =
        now(Problem::new(&model, TEXT, &TargetSpec::top(), None, &RunContext::default())).unwrap();
    let logits = problem.input_logits().flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let scores = now(explain(&problem, "saliency", &MethodParams::default(), 1)).unwrap().scores;
    (logits.iter().map(|v| v.to_bits()).collect(), scores.iter().map(|v| v.to_bits()).collect())
}

/// Weights kept decoded (the CLI's default) read the values the encoded path decodes for each
/// product, through the same kernels: the forward and backward passes agree bit for bit.
#[test]
fn decoded_weights_compute_the_same_bits() {
    let tiny = tiny_llama(CONFIG);
    for (encoding, name) in ENCODINGS {
        let bytes = with_matrices_in(&tiny.bytes, encoding);
        let encoded = f32_results(&bytes, WeightStorage::Encoded);
        assert!(
            encoded.1.iter().any(|&bits| f32::from_bits(bits) != 0.0),
            "{name}: all scores are zero"
        );
        for storage in [WeightStorage::Decoded, WeightStorage::Panels] {
            assert_eq!(
                encoded,
                f32_results(&bytes, storage),
                "{name}: {} weights changed a result",
                storage.name()
            );
        }
    }
}

#[test]
fn the_tested_encodings_are_the_supported_ones() {
    let tested: Vec<&str> = ENCODINGS.iter().map(|(_, name)| *name).collect();
    let supported: Vec<&str> = SUPPORTED_ENCODINGS.iter().map(|(_, name)| *name).collect();
    assert_eq!(tested, supported);
}

#[test]
fn every_supported_encoding_computes_its_dequantized_model() {
    let tiny = tiny_llama(CONFIG);
    let original = tiny.weights();
    for (encoding, name) in ENCODINGS {
        let bytes = with_matrices_in(&tiny.bytes, encoding);
        let weights = dequantized(&bytes);
        let (ids, embeds, logits) = engine_logits(&bytes, DType::F64);
        // Inputs are rows of the dequantized embedding matrix.
        let table = &weights["token_embd.weight"];
        for (id, row) in ids.iter().zip(&embeds) {
            let id = *id as usize;
            assert_eq!(
                row[..],
                table[id * CONFIG.width..(id + 1) * CONFIG.width],
                "{name}: embedding of {id}"
            );
        }
        let expected = reference::forward(
            Family::Llama,
            &CONFIG,
            &|n| weights.get(n).cloned(),
            &embeds,
            EXACT,
        );
        let error = relative_error(&logits, &expected.last_logits);
        // How far the encoding moved the function from the F32 original: shows the reference
        // really reads the encoded weights, so a decoding mistake could not hide.
        let original_embeds: Vec<Vec<f64>> = {
            let table = original("token_embd.weight").unwrap();
            ids.iter()
                .map(|id| {
                    table[*id as usize * CONFIG.width..(*id as usize + 1) * CONFIG.width].to_vec()
                })
                .collect()
        };
        let unencoded =
            reference::forward(Family::Llama, &CONFIG, &original, &original_embeds, EXACT);
        let shift = relative_error(&unencoded.last_logits, &expected.last_logits);
        let (_, _, f32_logits) = engine_logits(&bytes, DType::F32);
        let f32_error = relative_error(&f32_logits, &expected.last_logits);
        println!(
            "{name:>5}: f64 error {error:.2e}, f32 error {f32_error:.2e}, change from the F32 weights {shift:.2e}"
        );
        assert!(error < F64_TOLERANCE, "{name}: {error:.2e}");
        assert!(f32_error < F32_TOLERANCE, "{name}: {f32_error:.2e}");
        match encoding {
            GgmlDType::F32 => assert_eq!(shift, 0.0),
            _ => assert!(shift > 1e3 * F64_TOLERANCE, "{name} changed nothing: {shift:.2e}"),
        }
    }
}

#[test]
fn other_encodings_are_refused_by_name_at_load_time() {
    let tiny = tiny_llama(TinyConfig { width: 16, hidden: 32, ..CONFIG });
    let tensor = "blk.0.attn_q.weight";
    // IQ4_NL and IQ2_XXS are unknown to candle's reader; Q8_1 is known to it but not a storage
    // type llama.cpp writes; 99 is no ggml type at all.
    for (type_id, encoding) in [(20, "IQ4_NL"), (16, "IQ2_XXS"), (9, "Q8_1"), (99, "ggml type 99")]
    {
        let error =
            Model::load(with_type_id(&tiny.bytes, tensor, type_id)).err().expect("loading fails");
        let message = error.to_string();
        println!("{message}");
        match &error {
            EngineError::UnsupportedEncoding { tensor: t, encoding: e, supported } => {
                assert_eq!((t.as_str(), e.as_str()), (tensor, encoding));
                assert_eq!(supported.len(), SUPPORTED_ENCODINGS.len());
            }
            other => panic!("expected UnsupportedEncoding, got {other:?}"),
        }
        assert!(
            message.contains(tensor) && message.contains(encoding) && message.contains("Q4_K"),
            "{message}"
        );
    }
    // The unpatched file loads: the refusal is the type's doing.
    assert!(Model::load(tiny.bytes.clone()).is_ok());
}

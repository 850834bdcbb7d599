//! GGUF files built in memory for tests: a tiny llama whose every weight the test knows (so a
//! slow reference can recompute what the engine computes), and a copy of a real model with its
//! learned weights replaced by noise (the model-randomisation sanity check).

use super::Rng;
use candle_core::quantized::gguf_file::{self, Content, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use std::collections::BTreeMap;
use std::io::Cursor;

pub const RMS_EPS: f32 = 1e-5;
pub const ROPE_THETA: f32 = 10_000.0;

/// Merges on top of the 256 byte tokens, in priority order (each makes one more token).
const MERGES: [(&str, &str); 4] = [("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("a", "t")];
const END_OF_TEXT: &str = "<|endoftext|>";
/// llama.cpp's `llama_token_type`: normal and control tokens.
const TOKEN_TYPE_NORMAL: i32 = 1;
const TOKEN_TYPE_CONTROL: i32 = 3;

/// Sizes of a tiny llama-architecture model.
#[derive(Clone, Copy, Debug)]
pub struct TinyConfig {
    pub layers: usize,
    pub width: usize,
    pub heads: usize,
    pub kv_heads: usize,
    /// The MLP's inner width.
    pub hidden: usize,
    pub context_length: usize,
    pub seed: u64,
}

/// A tiny model's file and the exact weights in it.
pub struct TinyModel {
    pub config: TinyConfig,
    pub bytes: Vec<u8>,
    /// name → (shape, values in row-major order). Stored as F32, so the file holds exactly these.
    pub tensors: BTreeMap<String, (Vec<usize>, Vec<f32>)>,
}

impl TinyModel {
    /// The tensor `name` as written, widened to f64.
    pub fn weight(&self, name: &str) -> Vec<f64> {
        let (_, values) = self.tensors.get(name).unwrap_or_else(|| panic!("no tensor {name}"));
        values.iter().map(|v| *v as f64).collect()
    }

    pub fn vocab(&self) -> usize {
        self.tensors["token_embd.weight"].0[0]
    }

    /// The end-of-text token: the tokenizer's padding fallback, so the `pad` baseline's token.
    pub fn end_of_text_id(&self) -> u32 {
        (self.vocab() - 1) as u32
    }
}

/// GPT-2's spelling of each byte as a printable character: printable Latin-1 bytes stand for
/// themselves, the others (controls, space, …) for the code points from U+0100 on, in order.
fn byte_spellings() -> Vec<String> {
    let mut next = 0x100u32;
    (0..=255u8)
        .map(|byte| {
            let printable = matches!(byte, 0x21..=0x7E | 0xA1..=0xAC | 0xAE..=0xFF);
            let c = if printable {
                byte as char
            } else {
                next += 1;
                char::from_u32(next - 1).expect("a valid code point")
            };
            c.to_string()
        })
        .collect()
}

/// Tokens (bytes, merged pairs, end-of-text last), their llama.cpp types, and the merges.
fn vocabulary() -> (Vec<String>, Vec<i32>, Vec<String>) {
    let mut tokens = byte_spellings();
    tokens.extend(MERGES.iter().map(|(a, b)| format!("{a}{b}")));
    tokens.push(END_OF_TEXT.to_string());
    let mut types = vec![TOKEN_TYPE_NORMAL; tokens.len() - 1];
    types.push(TOKEN_TYPE_CONTROL);
    let merges = MERGES.iter().map(|(a, b)| format!("{a} {b}")).collect();
    (tokens, types, merges)
}

fn strings(values: Vec<String>) -> Value {
    Value::Array(values.into_iter().map(Value::String).collect())
}

fn u32_value(n: usize) -> Value {
    Value::U32(u32::try_from(n).expect("a small size"))
}

/// The GGUF bytes for `metadata` and `tensors`, in candle's writer's layout.
fn write_gguf(metadata: &[(&str, &Value)], tensors: &[(&str, &QTensor)]) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    gguf_file::write(&mut out, metadata, tensors).expect("the GGUF writer succeeds in memory");
    out.into_inner()
}

/// A llama with random weights, a byte-level vocabulary of 256 bytes + 4 merges + end-of-text,
/// and every metadata key the engine's loader and tokenizer read.
pub fn tiny_llama(config: TinyConfig) -> TinyModel {
    let TinyConfig { layers, width, heads, kv_heads, hidden, context_length, seed } = config;
    let (tokens, types, merges) = vocabulary();
    let vocab = tokens.len();
    let kv_width = kv_heads * (width / heads);

    // Scales keep activations O(1): unit-variance embeddings (RMSNorm sees ≈ unit rows),
    // projections with variance 1/fan-in, norm weights near 1.
    let mut rng = Rng::new(seed);
    let mut tensors: BTreeMap<String, (Vec<usize>, Vec<f32>)> = BTreeMap::new();
    let mut add = |name: String, shape: Vec<usize>, scale: f64, offset: f64| {
        let count = shape.iter().product::<usize>();
        let values = (0..count).map(|_| (offset + scale * rng.normal()) as f32).collect();
        tensors.insert(name, (shape, values));
    };
    let projection = |rows: usize, cols: usize| (vec![rows, cols], 1.0 / (cols as f64).sqrt());
    add("token_embd.weight".into(), vec![vocab, width], 1.0, 0.0);
    for l in 0..layers {
        let p = format!("blk.{l}");
        for (name, (shape, scale)) in [
            ("attn_q", projection(width, width)),
            ("attn_k", projection(kv_width, width)),
            ("attn_v", projection(kv_width, width)),
            ("attn_output", projection(width, width)),
            ("ffn_gate", projection(hidden, width)),
            ("ffn_up", projection(hidden, width)),
            ("ffn_down", projection(width, hidden)),
        ] {
            add(format!("{p}.{name}.weight"), shape, scale, 0.0);
        }
        add(format!("{p}.attn_norm.weight"), vec![width], 0.1, 1.0);
        add(format!("{p}.ffn_norm.weight"), vec![width], 0.1, 1.0);
    }
    add("output_norm.weight".into(), vec![width], 0.1, 1.0);
    let (shape, scale) = projection(vocab, width);
    add("output.weight".into(), shape, scale, 0.0);

    let metadata: Vec<(&str, Value)> = vec![
        ("general.architecture", Value::String("llama".into())),
        ("llama.block_count", u32_value(layers)),
        ("llama.embedding_length", u32_value(width)),
        ("llama.attention.head_count", u32_value(heads)),
        ("llama.attention.head_count_kv", u32_value(kv_heads)),
        ("llama.feed_forward_length", u32_value(hidden)),
        ("llama.context_length", u32_value(context_length)),
        ("llama.attention.layer_norm_rms_epsilon", Value::F32(RMS_EPS)),
        ("llama.rope.freq_base", Value::F32(ROPE_THETA)),
        ("tokenizer.ggml.model", Value::String("gpt2".into())),
        ("tokenizer.ggml.pre", Value::String("gpt2".into())),
        ("tokenizer.ggml.tokens", strings(tokens)),
        ("tokenizer.ggml.token_type", Value::Array(types.into_iter().map(Value::I32).collect())),
        ("tokenizer.ggml.merges", strings(merges)),
        ("tokenizer.ggml.add_bos_token", Value::Bool(false)),
        ("tokenizer.ggml.eos_token_id", u32_value(vocab - 1)),
    ];
    let metadata: Vec<(&str, &Value)> = metadata.iter().map(|(k, v)| (*k, v)).collect();
    let quantized: Vec<(&str, QTensor)> = tensors
        .iter()
        .map(|(name, (shape, values))| {
            let dense = Tensor::from_slice(values, shape.as_slice(), &Device::Cpu).expect("shape matches values");
            (name.as_str(), QTensor::quantize(&dense, GgmlDType::F32).expect("f32 storage"))
        })
        .collect();
    let refs: Vec<(&str, &QTensor)> = quantized.iter().map(|(n, t)| (*n, t)).collect();
    let bytes = write_gguf(&metadata, &refs);
    TinyModel { config, bytes, tensors }
}

/// A copy of the GGUF file `bytes` with every tensor replaced by seeded Gaussian noise of the
/// same shape, mean and standard deviation (so activations keep their scale), and the metadata
/// (tokenizer included) unchanged. Matrices are stored as Q8_0, vectors as F32.
pub fn reinitialised(bytes: &[u8], seed: u64) -> Vec<u8> {
    let mut reader = Cursor::new(bytes);
    let content = Content::read(&mut reader).expect("a readable GGUF file");
    let mut rng = Rng::new(seed);
    // Sorted, so the same seed gives the same weights whatever the file's tensor order.
    let mut names: Vec<&str> = content.tensor_infos.keys().map(String::as_str).collect();
    names.sort_unstable();
    let tensors: Vec<(&str, QTensor)> = names
        .into_iter()
        .map(|name| {
            let original = content.tensor(&mut reader, name, &Device::Cpu).expect("tensor reads");
            let values = original.dequantize(&Device::Cpu).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let n = values.len() as f64;
            let mean = values.iter().map(|v| *v as f64).sum::<f64>() / n;
            let std = (values.iter().map(|v| (*v as f64 - mean).powi(2)).sum::<f64>() / n).sqrt();
            let noise: Vec<f32> = (0..values.len()).map(|_| (mean + std * rng.normal()) as f32).collect();
            let dims = original.shape().dims().to_vec();
            let storage = match dims.as_slice() {
                [_, cols] if cols % GgmlDType::Q8_0.block_size() == 0 => GgmlDType::Q8_0,
                _ => GgmlDType::F32,
            };
            let dense = Tensor::from_vec(noise, dims, &Device::Cpu).unwrap();
            (name, QTensor::quantize(&dense, storage).expect("quantizes"))
        })
        .collect();
    let metadata: BTreeMap<&str, &Value> = content.metadata.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let metadata: Vec<(&str, &Value)> = metadata.into_iter().collect();
    let refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(n, t)| (*n, t)).collect();
    write_gguf(&metadata, &refs)
}

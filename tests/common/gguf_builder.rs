//! GGUF files built in memory for tests: tiny llama, qwen2 and gpt2 models whose every weight the
//! test knows (so a slow reference can recompute what the engine computes), copies of a file with
//! its tensors re-encoded, dropped or patched, and a copy of a real model with its learned weights
//! replaced by noise (the model-randomisation sanity check).

use super::Rng;
use candle_core::quantized::gguf_file::{self, Content, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use std::collections::BTreeMap;
use std::io::Cursor;

pub const RMS_EPS: f32 = 1e-5;
pub const ROPE_THETA: f32 = 10_000.0;
pub const LAYER_NORM_EPS: f32 = 1e-5;

/// Merges on top of the 256 byte tokens, in priority order (each makes one more token).
const MERGES: [(&str, &str); 4] = [("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("a", "t")];
const END_OF_TEXT: &str = "<|endoftext|>";
/// llama.cpp's `llama_token_type`: normal and control tokens.
const TOKEN_TYPE_NORMAL: i32 = 1;
const TOKEN_TYPE_CONTROL: i32 = 3;

/// The model families the builder writes, each as llama.cpp's converter lays it out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// Untied output, interleaved rotary layout, no biases.
    Llama,
    /// Biases on q, k and v, rotary positions over the halves of each head, tied output.
    Qwen2,
    /// Learned positions, LayerNorm and biases everywhere, fused qkv, GELU MLP, tied output.
    /// `kv_heads` must equal `heads`.
    Gpt2,
}

impl Family {
    /// `general.architecture`.
    pub fn name(self) -> &'static str {
        match self {
            Family::Llama => "llama",
            Family::Qwen2 => "qwen2",
            Family::Gpt2 => "gpt2",
        }
    }
}

/// Sizes of a tiny model.
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
    pub family: Family,
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

    /// Every tensor as written, widened to f64; `None` for a tensor the file lacks.
    pub fn weights(&self) -> impl Fn(&str) -> Option<Vec<f64>> + '_ {
        |name| self.tensors.contains_key(name).then(|| self.weight(name))
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
    tiny_model(Family::Llama, config)
}

/// A tiny model of `family`, like `tiny_llama`. Matrices are stored `(out, in)` and fused qkv as
/// q, k, v rows, as llama.cpp's converter writes them.
pub fn tiny_model(family: Family, config: TinyConfig) -> TinyModel {
    let TinyConfig { layers, width, heads, kv_heads, hidden, context_length, seed } = config;
    assert!(
        family != Family::Gpt2 || kv_heads == heads,
        "gpt2 has one key/value head per query head"
    );
    let arch = family.name();
    let (tokens, types, merges) = vocabulary();
    let vocab = tokens.len();
    let kv_width = kv_heads * (width / heads);

    // Scales keep activations O(1): unit-variance embeddings (the norms see ≈ unit rows),
    // projections with variance 1/fan-in, norm weights near 1. Biases are large enough that
    // leaving one out changes the output clearly.
    let mut rng = Rng::new(seed);
    let mut tensors: BTreeMap<String, (Vec<usize>, Vec<f32>)> = BTreeMap::new();
    let mut add = |name: String, shape: Vec<usize>, scale: f64, offset: f64| {
        let count = shape.iter().product::<usize>();
        let values = (0..count).map(|_| (offset + scale * rng.normal()) as f32).collect();
        tensors.insert(name, (shape, values));
    };
    let projection = |rows: usize, cols: usize| (vec![rows, cols], 1.0 / (cols as f64).sqrt());
    add("token_embd.weight".into(), vec![vocab, width], 1.0, 0.0);
    if family == Family::Gpt2 {
        add("position_embd.weight".into(), vec![context_length, width], 0.5, 0.0);
    }
    for l in 0..layers {
        let p = format!("blk.{l}");
        let matrices = match family {
            Family::Llama | Family::Qwen2 => vec![
                ("attn_q", projection(width, width)),
                ("attn_k", projection(kv_width, width)),
                ("attn_v", projection(kv_width, width)),
                ("attn_output", projection(width, width)),
                ("ffn_gate", projection(hidden, width)),
                ("ffn_up", projection(hidden, width)),
                ("ffn_down", projection(width, hidden)),
            ],
            Family::Gpt2 => vec![
                ("attn_qkv", projection(3 * width, width)),
                ("attn_output", projection(width, width)),
                ("ffn_up", projection(hidden, width)),
                ("ffn_down", projection(width, hidden)),
            ],
        };
        for (name, (shape, scale)) in &matrices {
            add(format!("{p}.{name}.weight"), shape.clone(), *scale, 0.0);
        }
        add(format!("{p}.attn_norm.weight"), vec![width], 0.1, 1.0);
        add(format!("{p}.ffn_norm.weight"), vec![width], 0.1, 1.0);
        let biased: Vec<(String, usize)> = match family {
            Family::Llama => vec![],
            Family::Qwen2 => vec![
                ("attn_q".into(), width),
                ("attn_k".into(), kv_width),
                ("attn_v".into(), kv_width),
            ],
            Family::Gpt2 => ["attn_norm", "ffn_norm"]
                .iter()
                .map(|n| (n.to_string(), width))
                .chain(matrices.iter().map(|(n, (shape, _))| (n.to_string(), shape[0])))
                .collect(),
        };
        for (name, len) in biased {
            add(format!("{p}.{name}.bias"), vec![len], 0.5, 0.0);
        }
    }
    add("output_norm.weight".into(), vec![width], 0.1, 1.0);
    match family {
        Family::Llama => {
            let (shape, scale) = projection(vocab, width);
            add("output.weight".into(), shape, scale, 0.0);
        }
        Family::Gpt2 => add("output_norm.bias".into(), vec![width], 0.5, 0.0),
        Family::Qwen2 => {}
    }

    let key = |name: &str| format!("{arch}.{name}");
    let mut metadata: Vec<(String, Value)> = vec![
        ("general.architecture".into(), Value::String(arch.into())),
        (key("block_count"), u32_value(layers)),
        (key("embedding_length"), u32_value(width)),
        (key("attention.head_count"), u32_value(heads)),
        (key("feed_forward_length"), u32_value(hidden)),
        (key("context_length"), u32_value(context_length)),
    ];
    let pre_tokenizer = match family {
        Family::Llama | Family::Qwen2 => {
            metadata.extend([
                (key("attention.head_count_kv"), u32_value(kv_heads)),
                (key("attention.layer_norm_rms_epsilon"), Value::F32(RMS_EPS)),
                (key("rope.freq_base"), Value::F32(ROPE_THETA)),
            ]);
            if family == Family::Llama {
                "gpt2"
            } else {
                "qwen2"
            }
        }
        Family::Gpt2 => {
            metadata.push((key("attention.layer_norm_epsilon"), Value::F32(LAYER_NORM_EPS)));
            "gpt-2"
        }
    };
    metadata.extend([
        ("tokenizer.ggml.model".into(), Value::String("gpt2".into())),
        ("tokenizer.ggml.pre".into(), Value::String(pre_tokenizer.into())),
        ("tokenizer.ggml.tokens".into(), strings(tokens)),
        (
            "tokenizer.ggml.token_type".into(),
            Value::Array(types.into_iter().map(Value::I32).collect()),
        ),
        ("tokenizer.ggml.merges".into(), strings(merges)),
        ("tokenizer.ggml.add_bos_token".into(), Value::Bool(false)),
        ("tokenizer.ggml.eos_token_id".into(), u32_value(vocab - 1)),
    ]);
    let metadata: Vec<(&str, &Value)> = metadata.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let quantized: Vec<(&str, QTensor)> = tensors
        .iter()
        .map(|(name, (shape, values))| {
            let dense = Tensor::from_slice(values, shape.as_slice(), &Device::Cpu)
                .expect("shape matches values");
            (name.as_str(), QTensor::quantize(&dense, GgmlDType::F32).expect("f32 storage"))
        })
        .collect();
    let refs: Vec<(&str, &QTensor)> = quantized.iter().map(|(n, t)| (*n, t)).collect();
    let bytes = write_gguf(&metadata, &refs);
    TinyModel { family, config, bytes, tensors }
}

/// A copy of the GGUF file `bytes`: each tensor (name, dense f32 values, shape) goes through
/// `tensor`, which re-encodes it or drops it (`None`); metadata keys in `overrides` replace or
/// join the file's.
pub fn rewritten(
    bytes: &[u8],
    overrides: &[(&str, Value)],
    mut tensor: impl FnMut(&str, Vec<f32>, &[usize]) -> Option<QTensor>,
) -> Vec<u8> {
    let mut reader = Cursor::new(bytes);
    let content = Content::read(&mut reader).expect("a readable GGUF file");
    // Sorted, so the output (and any randomness in `tensor`) does not depend on the file's order.
    let mut names: Vec<&str> = content.tensor_infos.keys().map(String::as_str).collect();
    names.sort_unstable();
    let tensors: Vec<(&str, QTensor)> = names
        .into_iter()
        .filter_map(|name| {
            let original = content.tensor(&mut reader, name, &Device::Cpu).expect("tensor reads");
            let values = original
                .dequantize(&Device::Cpu)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            tensor(name, values, original.shape().dims()).map(|t| (name, t))
        })
        .collect();
    let mut metadata: BTreeMap<&str, &Value> =
        content.metadata.iter().map(|(k, v)| (k.as_str(), v)).collect();
    metadata.extend(overrides.iter().map(|(k, v)| (*k, v)));
    let metadata: Vec<(&str, &Value)> = metadata.into_iter().collect();
    let refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(n, t)| (*n, t)).collect();
    write_gguf(&metadata, &refs)
}

fn encoded(values: Vec<f32>, dims: &[usize], encoding: GgmlDType) -> QTensor {
    let dense = Tensor::from_vec(values, dims, &Device::Cpu).unwrap();
    QTensor::quantize(&dense, encoding).expect("quantizes")
}

/// A copy of `bytes` with every matrix stored in `encoding` and vectors kept F32, as llama.cpp
/// quantizes. Rows must fill whole blocks of `encoding` (256 values for the K-quants).
pub fn with_matrices_in(bytes: &[u8], encoding: GgmlDType) -> Vec<u8> {
    rewritten(bytes, &[], |_, values, dims| {
        Some(encoded(values, dims, if dims.len() == 2 { encoding } else { GgmlDType::F32 }))
    })
}

/// A copy of `bytes`, tensors stored F32, without the tensor `name`.
pub fn without_tensor(bytes: &[u8], name: &str) -> Vec<u8> {
    rewritten(bytes, &[], |n, values, dims| {
        (n != name).then(|| encoded(values, dims, GgmlDType::F32))
    })
}

/// A copy of `bytes`, tensors stored F32, with the metadata keys in `overrides` replaced or added.
pub fn with_metadata(bytes: &[u8], overrides: &[(&str, Value)]) -> Vec<u8> {
    rewritten(bytes, overrides, |_, values, dims| Some(encoded(values, dims, GgmlDType::F32)))
}

/// A copy of `bytes` whose tensor table says `name` is stored as ggml type `type_id`, bytes
/// unchanged: how a file in an encoding candle cannot write (IQ4_NL, …) looks to a reader.
pub fn with_type_id(bytes: &[u8], name: &str, type_id: u32) -> Vec<u8> {
    // A tensor-table entry: name length (u64), name, dimension count (u32), dimensions (u64
    // each), type (u32), offset (u64). candle writes GGUF version 2, with 64-bit lengths.
    let mut entry = (name.len() as u64).to_le_bytes().to_vec();
    entry.extend_from_slice(name.as_bytes());
    let at = bytes
        .windows(entry.len())
        .position(|w| w == entry)
        .unwrap_or_else(|| panic!("no tensor {name}"));
    let dims_at = at + entry.len();
    let dims = u32::from_le_bytes(bytes[dims_at..dims_at + 4].try_into().unwrap()) as usize;
    let type_at = dims_at + 4 + 8 * dims;
    let mut patched = bytes.to_vec();
    patched[type_at..type_at + 4].copy_from_slice(&type_id.to_le_bytes());
    patched
}

/// A copy of the GGUF file `bytes` with every tensor replaced by seeded Gaussian noise of the
/// same shape, mean and standard deviation (so activations keep their scale), and the metadata
/// (tokenizer included) unchanged. Matrices are stored as Q8_0, vectors as F32.
pub fn reinitialised(bytes: &[u8], seed: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    rewritten(bytes, &[], |_, values, dims| {
        let n = values.len() as f64;
        let mean = values.iter().map(|v| *v as f64).sum::<f64>() / n;
        let std = (values.iter().map(|v| (*v as f64 - mean).powi(2)).sum::<f64>() / n).sqrt();
        let noise: Vec<f32> =
            (0..values.len()).map(|_| (mean + std * rng.normal()) as f32).collect();
        let storage = match dims {
            [_, cols] if cols % GgmlDType::Q8_0.block_size() == 0 => GgmlDType::Q8_0,
            _ => GgmlDType::F32,
        };
        Some(encoded(noise, dims, storage))
    })
}

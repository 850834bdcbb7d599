//! Model families, as data. Each file reads one family's GGUF keys and tensors into an
//! [`Architecture`]: its sizes, what kind of norm, positions and MLP its blocks use, and every
//! weight as the file holds it. The registry below maps `general.architecture` to the reader.
//! Adding a family is one file plus one line here; the backends (`cpu`, `gpu`) each build their
//! decoder from an `Architecture`, so neither names a family.

mod gpt2;
mod llama;
mod qwen2;

use crate::engine::error::{EngineError, Result};
use crate::engine::model::gguf::GgufFile;
use crate::engine::model::weights::QuantizedMatrix;

type Reader = fn(&GgufFile) -> Result<Architecture>;

/// `general.architecture` → reader.
const ARCHITECTURES: &[(&str, Reader)] =
    &[("llama", llama::read), ("qwen2", qwen2::read), ("gpt2", gpt2::read)];

pub fn supported() -> Vec<&'static str> {
    ARCHITECTURES.iter().map(|(name, _)| *name).collect()
}

/// The model `file` describes, or why the engine cannot run it.
pub fn read(file: &GgufFile) -> Result<Architecture> {
    let arch = file.architecture()?;
    let (_, reader) = ARCHITECTURES.iter().find(|(name, _)| *name == arch).ok_or_else(|| {
        EngineError::UnsupportedArchitecture { found: arch.clone(), supported: supported() }
    })?;
    reader(file)
}

/// Sizes read from the GGUF metadata.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DecoderConfig {
    pub architecture: String,
    pub layers: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub width: usize,
    /// The MLP's hidden width (`feed_forward_length`).
    pub ffn_width: usize,
    pub vocab: usize,
    pub context_length: usize,
}

impl DecoderConfig {
    pub fn head_dim(&self) -> usize {
        self.width / self.heads
    }
}

/// A decoder-only transformer of pre-norm blocks, as one file holds it.
#[derive(Clone)]
pub struct Architecture {
    pub config: DecoderConfig,
    /// `(vocab, width)`: the inputs attributions are taken with respect to.
    pub embedding: QuantizedMatrix,
    /// Learned absolute positions `(context_length, width)`, added to the token embeddings
    /// (GPT-2); `None`: positions enter through rotations.
    pub positions: Option<QuantizedMatrix>,
    /// Rotary positions of queries and keys, when the family uses them.
    pub rope: Option<RopeSpec>,
    pub norm: NormKind,
    pub mlp: MlpKind,
    pub blocks: Vec<BlockWeights>,
    pub output_norm: Norm,
    /// `(vocab, width)`: the token embedding for tied models.
    pub output: QuantizedMatrix,
}

/// How every norm of a model normalises (the last dimension).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum NormKind {
    /// `x / sqrt(mean(x²) + eps) · w`.
    Rms { eps: f64 },
    /// `(x − mean) / sqrt(var + eps) · w + b`.
    Layer { eps: f64 },
}

/// The MLP between a block's norm and its residual.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MlpKind {
    /// `down(silu(gate(x)) ⊙ up(x))` (llama).
    SwiGlu,
    /// `down(gelu_tanh(up(x)))` (GPT-2).
    GeluTanh,
}

/// Which elements of a head's vector rotary positions turn together.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RopeLayout {
    /// Pairs `(x0, x1), (x2, x3), ...`: llama.cpp's converter permutes llama-family query and key
    /// weights into this layout (its `LLAMA_ROPE_TYPE_NORM`).
    Interleaved,
    /// Pairs `(x_i, x_{i + d/2})`, the two halves of the vector: Hugging Face's layout, kept by
    /// qwen2 GGUFs (llama.cpp's `LLAMA_ROPE_TYPE_NEOX`).
    Halves,
}

/// Rotary position embedding: pair `i` of a head at position `p` turns by `p · inv_freq[i]`.
#[derive(Clone, Debug, PartialEq)]
pub struct RopeSpec {
    pub layout: RopeLayout,
    /// One per pair of a head's values: `1 / (theta^(2i / head_dim) · factor_i)`.
    pub inv_freq: Vec<f64>,
}

impl RopeSpec {
    /// The frequencies of heads of `head_dim` values with base `theta`, each divided by its
    /// Llama 3 `rope_freqs` factor when the file has them.
    pub fn new(head_dim: usize, theta: f64, factors: Option<Vec<f64>>, layout: RopeLayout) -> Self {
        let inv_freq = (0..head_dim / 2)
            .map(|i| {
                let base = 1.0 / theta.powf(2.0 * i as f64 / head_dim as f64);
                base / factors.as_ref().map_or(1.0, |f| f[i])
            })
            .collect();
        Self { layout, inv_freq }
    }
}

/// A norm's weights: a gain, and a bias for LayerNorm. Vectors are 1-row matrices.
#[derive(Clone)]
pub struct Norm {
    pub weight: QuantizedMatrix,
    pub bias: Option<QuantizedMatrix>,
}

/// A projection `x · Wᵀ (+ b)`: `weight` `(out, in)`, `bias` `(1, out)`.
#[derive(Clone)]
pub struct Linear {
    pub weight: QuantizedMatrix,
    pub bias: Option<QuantizedMatrix>,
}

/// How a block projects queries, keys and values.
#[derive(Clone)]
pub enum Qkv {
    Separate {
        q: Linear,
        k: Linear,
        v: Linear,
    },
    /// Queries, keys and values stacked in one `(3 · width, width)` projection (GPT-2).
    Fused(Linear),
}

/// One block: `x + o(attention(norm(x)))`, then `x + mlp(norm(x))`.
#[derive(Clone)]
pub struct BlockWeights {
    pub attn_norm: Norm,
    pub qkv: Qkv,
    pub o: Linear,
    pub ffn_norm: Norm,
    /// The gate of a SwiGLU MLP.
    pub gate: Option<Linear>,
    pub up: Linear,
    pub down: Linear,
}

/// Reads `{arch}.{key}`, the GGUF convention for hyper-parameters.
fn hyper(file: &GgufFile, arch: &str, key: &str) -> Result<usize> {
    file.usize(&format!("{arch}.{key}"))
}

/// The width of one attention head, after checking that the head counts fit the width.
fn head_dim(width: usize, heads: usize, kv_heads: usize) -> Result<usize> {
    if heads == 0
        || kv_heads == 0
        || !width.is_multiple_of(heads)
        || !heads.is_multiple_of(kv_heads)
    {
        return Err(EngineError::CorruptGguf(format!(
            "{heads} heads / {kv_heads} key-value heads do not divide width {width}"
        )));
    }
    Ok(width / heads)
}

/// The token embedding matrix `(vocab, width)`, also the output matrix for tied models.
fn token_embedding(file: &GgufFile, width: usize) -> Result<QuantizedMatrix> {
    let vocab = file.array("tokenizer.ggml.tokens")?.len();
    file.matrix("token_embd.weight", vocab, width)
}

/// The output projection `output.weight`, or the token embedding for tied models (SmolLM,
/// Qwen2 0.5B, GPT-2), which have none.
fn output_projection(file: &GgufFile, embedding: &QuantizedMatrix) -> Result<QuantizedMatrix> {
    match file.has_tensor("output.weight") {
        true => file.matrix("output.weight", embedding.rows(), embedding.cols()),
        false => Ok(embedding.clone()),
    }
}

/// Whether a projection has a bias `{name}.bias`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Bias {
    /// The family always has one: a file without it is damaged.
    Required,
    /// Used when the file has one (llama.cpp's loaders treat these as optional).
    IfPresent,
}

/// The vector `name` of `len` values, as a 1-row matrix.
fn vector(file: &GgufFile, name: &str, len: usize) -> Result<QuantizedMatrix> {
    file.matrix(name, 1, len)
}

/// The projection `{name}.weight` `(rows, cols)` and its bias `{name}.bias` `(rows,)`.
fn linear(file: &GgufFile, name: &str, rows: usize, cols: usize, bias: Bias) -> Result<Linear> {
    let bias_name = format!("{name}.bias");
    let bias = match bias == Bias::Required || file.has_tensor(&bias_name) {
        true => Some(vector(file, &bias_name, rows)?),
        false => None,
    };
    Ok(Linear { weight: file.matrix(&format!("{name}.weight"), rows, cols)?, bias })
}

/// The norm `{name}.weight` `(width,)` and, with `bias`, `{name}.bias`.
fn norm(file: &GgufFile, name: &str, width: usize, bias: bool) -> Result<Norm> {
    Ok(Norm {
        weight: vector(file, &format!("{name}.weight"), width)?,
        bias: bias.then(|| vector(file, &format!("{name}.bias"), width)).transpose()?,
    })
}

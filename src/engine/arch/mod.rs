//! Model families. Each file builds a differentiable decoder from a GGUF file; the registry below
//! maps `general.architecture` to it. Adding a family is one file plus one line here.

mod gpt2;
mod llama;
mod qwen2;

use super::error::{EngineError, Result};
use super::frozen_linear::FrozenLinear;
use super::gguf::GgufFile;
use super::layers::{LayerNorm, Projection};
use super::weights::QuantizedMatrix;
use candle_core::{DType, Tensor};

type Loader = fn(&GgufFile, DType) -> Result<Box<dyn Decoder>>;

/// `general.architecture` → loader.
const ARCHITECTURES: &[(&str, Loader)] =
    &[("llama", llama::Llama::load), ("qwen2", qwen2::load), ("gpt2", gpt2::Gpt2::load)];

pub fn supported() -> Vec<&'static str> {
    ARCHITECTURES.iter().map(|(name, _)| *name).collect()
}

pub fn load(file: &GgufFile, dtype: DType) -> Result<Box<dyn Decoder>> {
    let arch = file.architecture()?;
    let (_, loader) = ARCHITECTURES
        .iter()
        .find(|(name, _)| *name == arch)
        .ok_or_else(|| EngineError::UnsupportedArchitecture { found: arch.clone(), supported: supported() })?;
    loader(file, dtype)
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

/// What one forward pass gives.
pub struct DecoderOutput {
    /// Next-token logits at the last position, `(batch, vocab)`.
    pub last_logits: Tensor,
    /// Per layer, attention probabilities `(batch, heads, seq, seq)`.
    pub attentions: Vec<Tensor>,
}

/// A decoder-only language model that reads input embeddings, so gradients reach them.
pub trait Decoder: Send + Sync {
    fn config(&self) -> &DecoderConfig;
    /// Token embeddings `(ids.len(), width)`: the inputs attributions are taken with respect to.
    fn embed(&self, ids: &[u32]) -> Result<Tensor>;
    /// `embeds`: `(batch, seq, width)`.
    fn forward(&self, embeds: &Tensor) -> Result<DecoderOutput>;
    fn dtype(&self) -> DType;
}

/// Reads `{arch}.{key}`, the GGUF convention for hyper-parameters.
fn hyper(file: &GgufFile, arch: &str, key: &str) -> Result<usize> {
    file.usize(&format!("{arch}.{key}"))
}

/// The width of one attention head, after checking that the head counts fit the width.
fn head_dim(width: usize, heads: usize, kv_heads: usize) -> Result<usize> {
    if heads == 0 || kv_heads == 0 || !width.is_multiple_of(heads) || !heads.is_multiple_of(kv_heads) {
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
fn output_projection(file: &GgufFile, embedding: &QuantizedMatrix) -> Result<FrozenLinear> {
    Ok(match file.has_tensor("output.weight") {
        true => FrozenLinear::new(file.matrix("output.weight", embedding.rows(), embedding.cols())?),
        false => FrozenLinear::new(embedding.clone()),
    })
}

/// Runs the residual stream `x` `(batch, seq, width)` through `blocks` in turn, `step` being one
/// block. Returns the last position's state `(batch, width)` and each block's attention
/// probabilities.
fn run_blocks<B>(
    blocks: &[B],
    x: &Tensor,
    step: impl Fn(&B, &Tensor) -> Result<(Tensor, Tensor)>,
) -> Result<(Tensor, Vec<Tensor>)> {
    let mut x = x.clone();
    let mut attentions = Vec::with_capacity(blocks.len());
    for block in blocks {
        let (next, probs) = step(block, &x)?;
        x = next;
        attentions.push(probs);
    }
    let seq = x.dim(1)?;
    Ok((x.narrow(1, seq - 1, 1)?.squeeze(1)?, attentions))
}

/// Whether a projection has a bias `{name}.bias`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Bias {
    /// The family always has one: a file without it is damaged.
    Required,
    /// Used when the file has one (llama.cpp's loaders treat these as optional).
    IfPresent,
}

/// The projection `{name}.weight` `(rows, cols)` and its bias `{name}.bias` `(rows,)`.
fn projection(file: &GgufFile, name: &str, rows: usize, cols: usize, bias: Bias, dtype: DType) -> Result<Projection> {
    let bias_name = format!("{name}.bias");
    let bias = match bias == Bias::Required || file.has_tensor(&bias_name) {
        true => Some(file.vector(&bias_name, rows, dtype)?),
        false => None,
    };
    Ok(Projection { weight: FrozenLinear::new(file.matrix(&format!("{name}.weight"), rows, cols)?), bias })
}

/// The LayerNorm `{name}.weight` and `{name}.bias`, each `(width,)`.
fn layer_norm(file: &GgufFile, name: &str, width: usize, eps: f64, dtype: DType) -> Result<LayerNorm> {
    Ok(LayerNorm {
        weight: file.vector(&format!("{name}.weight"), width, dtype)?,
        bias: file.vector(&format!("{name}.bias"), width, dtype)?,
        eps,
    })
}

//! Model families. Each file builds a differentiable decoder from a GGUF file; the registry below
//! maps `general.architecture` to it. Adding a family is one file plus one line here.

mod llama;

use super::error::{EngineError, Result};
use super::gguf::GgufFile;
use super::weights::QuantizedMatrix;
use candle_core::{DType, Tensor};

type Loader = fn(&GgufFile, DType) -> Result<Box<dyn Decoder>>;

/// `general.architecture` → loader.
const ARCHITECTURES: &[(&str, Loader)] = &[("llama", llama::Llama::load)];

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

/// The token embedding matrix `(vocab, width)`, also the output matrix for tied models.
fn token_embedding(file: &GgufFile, width: usize) -> Result<QuantizedMatrix> {
    let vocab = file.array("tokenizer.ggml.tokens")?.len();
    file.matrix("token_embd.weight", vocab, width)
}

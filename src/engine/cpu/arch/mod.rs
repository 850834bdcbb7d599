//! Model families. Each file builds a differentiable decoder from a GGUF file; the registry below
//! maps `general.architecture` to it. Adding a family is one file plus one line here.

mod gpt2;
mod llama;
mod qwen2;

use crate::engine::cpu::layers::{KeyValues, LayerNorm, Projection};
use crate::engine::cpu::ops::linear::FrozenLinear;
use crate::engine::error::{EngineError, Result};
use crate::engine::model::gguf::GgufFile;
use crate::engine::model::weights::QuantizedMatrix;
use crate::engine::runtime::progress;
use candle_core::{DType, Tensor};
use std::ops::Range;

type Loader = fn(&GgufFile, DType) -> Result<Box<dyn Decoder>>;

/// `general.architecture` → loader.
const ARCHITECTURES: &[(&str, Loader)] =
    &[("llama", llama::Llama::load), ("qwen2", qwen2::load), ("gpt2", gpt2::Gpt2::load)];

pub fn supported() -> Vec<&'static str> {
    ARCHITECTURES.iter().map(|(name, _)| *name).collect()
}

pub fn load(file: &GgufFile, dtype: DType) -> Result<Box<dyn Decoder>> {
    let arch = file.architecture()?;
    let (_, loader) = ARCHITECTURES.iter().find(|(name, _)| *name == arch).ok_or_else(|| {
        EngineError::UnsupportedArchitecture { found: arch.clone(), supported: supported() }
    })?;
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

/// What a block computes besides the next stream.
pub struct Attended {
    /// Attention probabilities `(batch, heads, seq, positions)`.
    pub probs: Tensor,
    /// The keys and values of every position the block's queries saw.
    pub keys_values: KeyValues,
}

/// A decoder-only language model that reads input embeddings, so gradients reach them. A family
/// gives its pieces (the stream entering the first block, each block, the head); passes over them
/// are composed here and in `gradient.rs`, which runs the blocks a segment at a time.
///
/// A pass may continue a prefix: given every block's keys and values of the first positions
/// (batch 1, shared by every row), it computes only the positions after them. Inputs that differ
/// from a text only from some position on (occlusion, the deletion curve) skip what is unchanged.
pub trait Decoder: Send + Sync {
    fn config(&self) -> &DecoderConfig;
    fn dtype(&self) -> DType;
    /// Token embeddings `(ids.len(), width)`: the inputs attributions are taken with respect to.
    fn embed(&self, ids: &[u32]) -> Result<Tensor>;
    /// The token embedding matrix `(vocab, width)`, as the file holds it.
    fn token_embeddings(&self) -> &QuantizedMatrix;
    /// The residual stream entering the first block, from `embeds` `(batch, seq, width)` at the
    /// positions `start..start + seq`.
    fn stream(&self, embeds: &Tensor, start: usize) -> Result<Tensor>;
    /// Block `layer` on the residual stream `x` `(batch, seq, width)` at the positions after
    /// `past`'s (this block's keys and values of a shared prefix; `None`: from position 0).
    fn block(
        &self,
        layer: usize,
        x: &Tensor,
        past: Option<&KeyValues>,
    ) -> Result<(Tensor, Attended)>;
    /// Next-token logits `(batch, vocab)` from the last position's state `(batch, width)`.
    fn head(&self, last: &Tensor) -> Result<Tensor>;

    /// The whole forward pass on `embeds` `(batch, seq, width)`, with every block's attention
    /// probabilities. It keeps a graph only when `embeds` is a variable.
    fn forward(&self, embeds: &Tensor) -> Result<DecoderOutput> {
        let mut attentions = Vec::with_capacity(self.config().layers);
        let last = run_blocks(self, embeds, 0..self.config().layers, None, |out| {
            attentions.push(out.probs)
        })?;
        Ok(DecoderOutput { last_logits: self.head(&last_position(&last)?)?, attentions })
    }

    /// Every block's keys and values on `embeds` `(1, seq, width)`: the prefix later passes on
    /// inputs that share its positions continue ([`Self::logits`]).
    fn keys_values(&self, embeds: &Tensor) -> Result<Vec<KeyValues>> {
        let mut keys_values = Vec::with_capacity(self.config().layers);
        run_blocks(self, embeds, 0..self.config().layers, None, |out| {
            keys_values.push(out.keys_values)
        })?;
        Ok(keys_values)
    }

    /// Next-token logits `(batch, vocab)` alone (no attention map outlives its block) of `embeds`
    /// `(batch, seq, width)`, the positions after those of `past` (one entry per block, from
    /// [`Self::keys_values`]; `None`: from position 0).
    fn logits(&self, embeds: &Tensor, past: Option<&[KeyValues]>) -> Result<Tensor> {
        let last = run_blocks(self, embeds, 0..self.config().layers, past, drop)?;
        self.head(&last_position(&last)?)
    }
}

/// Runs `layers` of `decoder` on `x` (the embeddings when `layers` starts at the first block,
/// else the residual stream entering `layers.start`), continuing `past` (indexed by layer) when
/// given, and hands what each block attended to `visit`. Returns the stream leaving the last of
/// `layers`. Counts each block's share of a forward pass over `x`'s sequences and positions as it
/// finishes (`progress::share`).
pub fn run_blocks<D: Decoder + ?Sized>(
    decoder: &D,
    x: &Tensor,
    layers: Range<usize>,
    past: Option<&[KeyValues]>,
    mut visit: impl FnMut(Attended),
) -> Result<Tensor> {
    if past.is_some_and(|past| past.len() < layers.end) {
        return Err(EngineError::Internal("a prefix's keys and values are missing blocks".into()));
    }
    let mut x = match (layers.start, past) {
        (0, Some(past)) if !past.is_empty() => decoder.stream(x, past[0].positions()?)?,
        (0, _) => decoder.stream(x, 0)?,
        _ => x.clone(),
    };
    let (total, units) = (decoder.config().layers, progress::forward(x.dim(0)?, x.dim(1)?));
    if layers.is_empty() {
        progress::advance(progress::share(units, layers.clone(), total));
    }
    for layer in layers {
        let (next, attended) = decoder.block(layer, &x, past.map(|past| &past[layer]))?;
        x = next;
        visit(attended);
        progress::advance(progress::share(units, layer..layer + 1, total));
    }
    Ok(x)
}

/// The last position's state `(batch, width)` of a stream `(batch, seq, width)`.
pub fn last_position(x: &Tensor) -> Result<Tensor> {
    let seq = x.dim(1)?;
    Ok(x.narrow(1, seq - 1, 1)?.squeeze(1)?)
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
fn output_projection(file: &GgufFile, embedding: &QuantizedMatrix) -> Result<FrozenLinear> {
    Ok(match file.has_tensor("output.weight") {
        true => {
            FrozenLinear::new(file.matrix("output.weight", embedding.rows(), embedding.cols())?)
        }
        false => FrozenLinear::new(embedding.clone()),
    })
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
fn projection(
    file: &GgufFile,
    name: &str,
    rows: usize,
    cols: usize,
    bias: Bias,
    dtype: DType,
) -> Result<Projection> {
    let bias_name = format!("{name}.bias");
    let bias = match bias == Bias::Required || file.has_tensor(&bias_name) {
        true => Some(file.vector(&bias_name, rows, dtype)?),
        false => None,
    };
    Ok(Projection {
        weight: FrozenLinear::new(file.matrix(&format!("{name}.weight"), rows, cols)?),
        bias,
    })
}

/// The LayerNorm `{name}.weight` and `{name}.bias`, each `(width,)`.
fn layer_norm(
    file: &GgufFile,
    name: &str,
    width: usize,
    eps: f64,
    dtype: DType,
) -> Result<LayerNorm> {
    Ok(LayerNorm {
        weight: file.vector(&format!("{name}.weight"), width, dtype)?,
        bias: file.vector(&format!("{name}.bias"), width, dtype)?,
        eps,
    })
}

//! The CPU decoder: an [`Architecture`] as differentiable candle computations. Every family runs
//! the same pre-norm block, its kinds (norm, positions, query/key/value projection, MLP) picked by
//! what the architecture says; every projection is a `FrozenLinear` over the file's weights, and
//! every op has an exact backward pass, so gradients reach the input embeddings.

use crate::engine::cpu::layers::{causal_attention, split_heads, KeyValues, LayerNorm, Projection};
use crate::engine::cpu::ops::gelu::gelu_tanh;
use crate::engine::cpu::ops::linear::FrozenLinear;
use crate::engine::cpu::ops::rms_norm::rms_norm;
use crate::engine::cpu::ops::rope::Rope;
use crate::engine::cpu::ops::swiglu::swiglu;
use crate::engine::error::{EngineError, Result};
use crate::engine::model::arch::{
    Architecture, DecoderConfig, Linear, MlpKind, Norm, NormKind, Qkv,
};
use crate::engine::model::weights::QuantizedMatrix;
use crate::engine::runtime::context::{RunContext, StopToken};
use crate::engine::runtime::progress;
use candle_core::{DType, Tensor};
use std::ops::Range;

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

/// A decoder-only language model that reads input embeddings, so gradients reach them. It gives
/// its pieces (the stream entering the first block, each block, the head); passes over them are
/// composed here and in `gradient.rs`, which runs the blocks a segment at a time.
///
/// A pass may continue a prefix: given every block's keys and values of the first positions
/// (batch 1, shared by every row), it computes only the positions after them. Inputs that differ
/// from a text only from some position on (occlusion, the deletion curve) skip what is unchanged.
pub trait Decoder: Send + Sync {
    fn config(&self) -> &DecoderConfig;
    /// The run this decoder computes for: its stop token, progress and memory budget.
    fn context(&self) -> &RunContext;
    fn dtype(&self) -> DType;
    /// Token embeddings `(ids.len(), width)`: the inputs attributions are taken with respect to.
    fn embed(&self, ids: &[u32]) -> Result<Tensor>;
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
    let sink = &decoder.context().progress;
    if layers.is_empty() {
        sink.advance(progress::share(units, layers.clone(), total));
    }
    for layer in layers {
        let (next, attended) = decoder.block(layer, &x, past.map(|past| &past[layer]))?;
        x = next;
        visit(attended);
        sink.advance(progress::share(units, layer..layer + 1, total));
    }
    Ok(x)
}

/// The last position's state `(batch, width)` of a stream `(batch, seq, width)`.
pub fn last_position(x: &Tensor) -> Result<Tensor> {
    let seq = x.dim(1)?;
    Ok(x.narrow(1, seq - 1, 1)?.squeeze(1)?)
}

/// A norm as the CPU computes it.
enum CpuNorm {
    Rms { weight: Tensor, eps: f64, stop: StopToken },
    Layer(LayerNorm),
}

impl CpuNorm {
    fn new(norm: &Norm, kind: NormKind, dtype: DType, stop: &StopToken) -> Result<Self> {
        let vector =
            |v: &QuantizedMatrix| -> Result<Tensor> { Ok(v.dequantize(dtype)?.flatten_all()?) };
        Ok(match (kind, &norm.bias) {
            (NormKind::Rms { eps }, _) => {
                CpuNorm::Rms { weight: vector(&norm.weight)?, eps, stop: stop.clone() }
            }
            (NormKind::Layer { eps }, Some(bias)) => CpuNorm::Layer(LayerNorm {
                weight: vector(&norm.weight)?,
                bias: vector(bias)?,
                eps,
            }),
            (NormKind::Layer { .. }, None) => {
                return Err(EngineError::Internal("a LayerNorm without its bias".into()))
            }
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            CpuNorm::Rms { weight, eps, stop } => rms_norm(stop, x, weight, *eps),
            CpuNorm::Layer(norm) => norm.forward(x),
        }
    }
}

fn projection(linear: &Linear, dtype: DType, stop: &StopToken) -> Result<Projection> {
    let bias =
        linear.bias.as_ref().map(|b| -> Result<Tensor> { Ok(b.dequantize(dtype)?.flatten_all()?) });
    let weight = FrozenLinear::new(linear.weight.clone(), stop.clone());
    Ok(Projection { weight, bias: bias.transpose()? })
}

enum CpuQkv {
    Separate { q: Projection, k: Projection, v: Projection },
    Fused(Projection),
}

struct Block {
    attn_norm: CpuNorm,
    qkv: CpuQkv,
    o: Projection,
    ffn_norm: CpuNorm,
    gate: Option<Projection>,
    up: Projection,
    down: Projection,
}

pub struct CpuDecoder {
    config: DecoderConfig,
    context: RunContext,
    dtype: DType,
    embedding: QuantizedMatrix,
    positions: Option<QuantizedMatrix>,
    rope: Option<Rope>,
    mlp: MlpKind,
    blocks: Vec<Block>,
    output_norm: CpuNorm,
    output: FrozenLinear,
}

impl CpuDecoder {
    /// `model`'s decoder, in the precision it computes in, for the run `context`.
    pub fn of(model: &crate::engine::model::Model, context: &RunContext) -> Result<Self> {
        Self::new(&model.architecture, model.dtype, context.clone())
    }

    /// `arch` computing in `dtype` (f32 in the page and the CLI; f64 gives the same function in
    /// double precision, for the tests), for the run `context`.
    pub fn new(arch: &Architecture, dtype: DType, context: RunContext) -> Result<Self> {
        let stop = &context.stop;
        let norm = |n: &Norm| CpuNorm::new(n, arch.norm, dtype, stop);
        let projection = |l: &Linear| projection(l, dtype, stop);
        let blocks = arch
            .blocks
            .iter()
            .map(|b| {
                Ok(Block {
                    attn_norm: norm(&b.attn_norm)?,
                    qkv: match &b.qkv {
                        Qkv::Separate { q, k, v } => CpuQkv::Separate {
                            q: projection(q)?,
                            k: projection(k)?,
                            v: projection(v)?,
                        },
                        Qkv::Fused(qkv) => CpuQkv::Fused(projection(qkv)?),
                    },
                    o: projection(&b.o)?,
                    ffn_norm: norm(&b.ffn_norm)?,
                    gate: b.gate.as_ref().map(projection).transpose()?,
                    up: projection(&b.up)?,
                    down: projection(&b.down)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            config: arch.config.clone(),
            dtype,
            embedding: arch.embedding.clone(),
            positions: arch.positions.clone(),
            rope: arch.rope.as_ref().map(Rope::new),
            mlp: arch.mlp,
            blocks,
            output_norm: norm(&arch.output_norm)?,
            output: FrozenLinear::new(arch.output.clone(), stop.clone()),
            context,
        })
    }
}

impl CpuDecoder {
    /// Block `layer`'s attention on the residual stream `x` `(batch, seq, width)`: the heads'
    /// mixed values `(batch, seq, heads · head_dim)` before the output projection, the attention
    /// probabilities, and the keys and values.
    fn attention(
        &self,
        layer: usize,
        x: &Tensor,
        past: Option<&KeyValues>,
    ) -> Result<(Tensor, Tensor, KeyValues)> {
        let block = &self.blocks[layer];
        let (heads, kv_heads) = (self.config.heads, self.config.kv_heads);
        let h = block.attn_norm.forward(x)?;
        let (q, k, v) = match &block.qkv {
            CpuQkv::Separate { q, k, v } => (
                split_heads(&q.forward(&h)?, heads)?,
                split_heads(&k.forward(&h)?, kv_heads)?,
                split_heads(&v.forward(&h)?, kv_heads)?,
            ),
            CpuQkv::Fused(qkv) => {
                let (qkv, width) = (qkv.forward(&h)?, self.config.width);
                let part = |p: usize| split_heads(&qkv.narrow(2, p * width, width)?, heads);
                (part(0)?, part(1)?, part(2)?)
            }
        };
        let (q, k) = match &self.rope {
            Some(rope) => {
                let start = past.map(KeyValues::positions).transpose()?.unwrap_or(0);
                let stop = &self.context.stop;
                (rope.apply(stop, &q, start)?, rope.apply(stop, &k, start)?)
            }
            None => (q, k),
        };
        causal_attention(&self.context.stop, &q, &k, &v, past)
    }

    /// Block `layer`'s MLP on the stream `x` after its attention: what it adds to the stream.
    fn mlp(&self, layer: usize, x: &Tensor) -> Result<Tensor> {
        let block = &self.blocks[layer];
        let h = block.ffn_norm.forward(x)?;
        let inner = match (self.mlp, &block.gate) {
            (MlpKind::SwiGlu, Some(gate)) => {
                swiglu(&self.context.stop, &gate.forward(&h)?, &block.up.forward(&h)?)?
            }
            (MlpKind::GeluTanh, _) => gelu_tanh(&block.up.forward(&h)?)?,
            (MlpKind::SwiGlu, None) => {
                return Err(EngineError::Internal("a SwiGLU MLP without its gate".into()))
            }
        };
        block.down.forward(&inner)
    }

    /// Block `layer` on the stream `x` `(1, seq, width)` as [`Decoder::block`] computes it, and
    /// what it writes into the stream at the last position, in parts that add up to it.
    pub fn block_parts(&self, layer: usize, x: &Tensor) -> Result<(Tensor, BlockParts)> {
        let block = &self.blocks[layer];
        let (mixed, probs, _) = self.attention(layer, x, None)?;
        let x = (x + block.o.forward(&mixed)?)?;
        let mlp = self.mlp(layer, &x)?;
        let next = (&x + &mlp)?;
        let (heads, width) = (self.config.heads, self.config.width);
        let head_dim = width / heads;
        // Each head's values carry the value bias whatever it attends to (its probabilities add
        // up to 1): that part is the bias's, the rest the head's.
        let value_bias = match &block.qkv {
            CpuQkv::Separate { v, .. } => v.bias.as_ref().map(|b| {
                let group = heads / self.config.kv_heads;
                let per_kv = b.reshape((self.config.kv_heads, 1, head_dim))?;
                per_kv.repeat((1, group, 1))?.reshape(width)
            }),
            CpuQkv::Fused(qkv) => qkv.bias.as_ref().map(|b| b.narrow(0, 2 * width, width)),
        }
        .transpose()?;
        let last = last_position(&mixed)?.squeeze(0)?;
        let values = match &value_bias {
            Some(bias) => (&last - bias)?,
            None => last,
        };
        // Row h: head h's values alone, through the output projection (without its bias).
        let mask = Tensor::eye(heads, self.dtype, values.device())?
            .unsqueeze(2)?
            .repeat((1, 1, head_dim))?
            .reshape((heads, width))?;
        let per_head = mask.broadcast_mul(&values.unsqueeze(0)?)?;
        let heads_out = block.o.weight.forward(&per_head.unsqueeze(0)?)?.squeeze(0)?;
        let mut bias = Tensor::zeros(width, self.dtype, values.device())?;
        if let Some(value_bias) = &value_bias {
            bias = (bias
                + block.o.weight.forward(&value_bias.reshape((1, 1, width))?)?.flatten_all()?)?;
        }
        for b in [&block.o.bias, &block.down.bias].into_iter().flatten() {
            bias = (bias + b)?;
        }
        let mlp_last = last_position(&mlp)?.squeeze(0)?;
        let mlp_out = match &block.down.bias {
            Some(b) => (mlp_last - b)?,
            None => mlp_last,
        };
        let seq = probs.dim(2)?;
        let attention = probs.squeeze(0)?.narrow(1, seq - 1, 1)?.squeeze(1)?;
        Ok((next, BlockParts { heads: heads_out, bias, mlp: mlp_out, attention }))
    }

    /// How the final norm and the unembedding read a component: the vector whose dot product
    /// with what a component writes into the stream at the last position is its share of
    /// `direction · head(last)` with the norm's scale (and centring) held at their values for
    /// `last` `(width,)`, and the share of the norm's own bias (a LayerNorm's).
    pub fn readout(&self, last: &Tensor, direction: &Tensor) -> Result<(Tensor, Option<f64>)> {
        let width = self.config.width as f64;
        let x = last.to_dtype(DType::F64)?;
        let d = direction.to_dtype(DType::F64)?;
        Ok(match &self.output_norm {
            CpuNorm::Rms { weight, eps, .. } => {
                let rms = ((x.sqr()?.sum_all()?.to_scalar::<f64>()? / width) + eps).sqrt();
                (((d * weight.to_dtype(DType::F64)?)? / rms)?, None)
            }
            CpuNorm::Layer(norm) => {
                let mean = x.mean_all()?.to_scalar::<f64>()?;
                let var = (x - mean)?.sqr()?.mean_all()?.to_scalar::<f64>()?;
                let scaled = ((&d * norm.weight.to_dtype(DType::F64)?)? / (var + norm.eps).sqrt())?;
                // (c − mean c)·u = c·(u − mean u): the centring moves to the readout.
                let centred = (&scaled - scaled.mean_all()?.to_scalar::<f64>()?)?;
                let bias = (d * norm.bias.to_dtype(DType::F64)?)?.sum_all()?.to_scalar::<f64>()?;
                (centred, Some(bias))
            }
        })
    }
}

/// What a block writes into the residual stream at the last position, in parts that add up to
/// it: each query head (through its slice of the output projection), the biases, the MLP.
pub struct BlockParts {
    /// `(heads, width)`.
    pub heads: Tensor,
    /// The output projection's bias, the value bias through the projection, the MLP's output
    /// bias: `(width,)`.
    pub bias: Tensor,
    /// `(width,)`, without its output bias.
    pub mlp: Tensor,
    /// Each head's attention from the last position over the positions, `(heads, seq)`.
    pub attention: Tensor,
}

impl Decoder for CpuDecoder {
    fn config(&self) -> &DecoderConfig {
        &self.config
    }

    fn dtype(&self) -> DType {
        self.dtype
    }

    fn context(&self) -> &RunContext {
        &self.context
    }

    fn embed(&self, ids: &[u32]) -> Result<Tensor> {
        self.embedding.gather_rows(ids, self.dtype)
    }

    /// The embeddings are the token embeddings alone: learned positions, when the family has
    /// them, are added here, so attributions are taken with respect to the tokens.
    fn stream(&self, embeds: &Tensor, start: usize) -> Result<Tensor> {
        let Some(positions) = &self.positions else { return Ok(embeds.clone()) };
        let end = start + embeds.dim(1)?;
        let context = self.config.context_length;
        if end > context {
            // There is no learned position past the context.
            return Err(EngineError::TextTooLong { tokens: end, max: context, context });
        }
        Ok(embeds.broadcast_add(&positions.dequantize_rows(start..end, self.dtype)?)?)
    }

    fn block(
        &self,
        layer: usize,
        x: &Tensor,
        past: Option<&KeyValues>,
    ) -> Result<(Tensor, Attended)> {
        let (mixed, probs, keys_values) = self.attention(layer, x, past)?;
        let x = (x + self.blocks[layer].o.forward(&mixed)?)?;
        let x = (&x + self.mlp(layer, &x)?)?;
        Ok((x, Attended { probs, keys_values }))
    }

    fn head(&self, last: &Tensor) -> Result<Tensor> {
        self.output.forward(&self.output_norm.forward(last)?)
    }
}

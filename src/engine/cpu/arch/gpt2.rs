//! GPT-2: learned absolute positions added to the token embeddings, pre-LayerNorm blocks (every
//! norm and projection with a bias) of multi-head attention through one fused query/key/value
//! projection, and a GELU MLP. The output projection is the token embedding unless the file has
//! its own.

use crate::engine::cpu::arch::{
    head_dim, hyper, layer_norm, output_projection, projection, token_embedding, Attended, Bias,
    Decoder, DecoderConfig,
};
use crate::engine::cpu::layers::{
    causal_attention, gelu_tanh, split_heads, KeyValues, LayerNorm, Projection,
};
use crate::engine::cpu::ops::linear::FrozenLinear;
use crate::engine::error::{EngineError, Result};
use crate::engine::model::gguf::GgufFile;
use crate::engine::model::weights::QuantizedMatrix;
use candle_core::{DType, Tensor};

const ARCH: &str = "gpt2";

struct Block {
    attn_norm: LayerNorm,
    /// Queries, keys and values stacked: `(3 · width, width)`.
    qkv: Projection,
    o: Projection,
    ffn_norm: LayerNorm,
    up: Projection,
    down: Projection,
}

pub struct Gpt2 {
    config: DecoderConfig,
    dtype: DType,
    embedding: QuantizedMatrix,
    /// `(context_length, width)`: row `p` is added at position `p`.
    positions: QuantizedMatrix,
    blocks: Vec<Block>,
    output_norm: LayerNorm,
    output: FrozenLinear,
}

impl Gpt2 {
    pub fn load(file: &GgufFile, dtype: DType) -> Result<Box<dyn Decoder>> {
        let width = hyper(file, ARCH, "embedding_length")?;
        let heads = hyper(file, ARCH, "attention.head_count")?;
        let layers = hyper(file, ARCH, "block_count")?;
        let hidden =
            file.usize_or(&format!("{ARCH}.feed_forward_length"), width.saturating_mul(4))?;
        let context_length = hyper(file, ARCH, "context_length")?;
        let eps = file.f64(&format!("{ARCH}.attention.layer_norm_epsilon"))?;
        head_dim(width, heads, heads)?; // the heads must split the width evenly

        let embedding = token_embedding(file, width)?;
        let blocks = (0..layers)
            .map(|l| {
                let p = format!("blk.{l}");
                let linear = |name: &str, rows, cols| {
                    projection(file, &format!("{p}.{name}"), rows, cols, Bias::Required, dtype)
                };
                let norm = |name: &str| layer_norm(file, &format!("{p}.{name}"), width, eps, dtype);
                Ok(Block {
                    attn_norm: norm("attn_norm")?,
                    qkv: linear("attn_qkv", width.saturating_mul(3), width)?,
                    o: linear("attn_output", width, width)?,
                    ffn_norm: norm("ffn_norm")?,
                    up: linear("ffn_up", hidden, width)?,
                    down: linear("ffn_down", width, hidden)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let vocab = embedding.rows();
        let config = DecoderConfig {
            architecture: ARCH.into(),
            layers,
            heads,
            kv_heads: heads,
            width,
            ffn_width: hidden,
            vocab,
            context_length,
        };
        Ok(Box::new(Gpt2 {
            config,
            dtype,
            positions: file.matrix("position_embd.weight", context_length, width)?,
            output: output_projection(file, &embedding)?,
            embedding,
            blocks,
            output_norm: layer_norm(file, "output_norm", width, eps, dtype)?,
        }))
    }
}

impl Decoder for Gpt2 {
    fn config(&self) -> &DecoderConfig {
        &self.config
    }

    fn dtype(&self) -> DType {
        self.dtype
    }

    fn embed(&self, ids: &[u32]) -> Result<Tensor> {
        self.embedding.gather_rows(ids, self.dtype)
    }

    fn token_embeddings(&self) -> &QuantizedMatrix {
        &self.embedding
    }

    /// `embeds` are the token embeddings alone: the positions are added here, so attributions
    /// are taken with respect to the tokens.
    fn stream(&self, embeds: &Tensor, start: usize) -> Result<Tensor> {
        let end = start + embeds.dim(1)?;
        let context = self.config.context_length;
        if end > context {
            // There is no learned position past the context.
            return Err(EngineError::TextTooLong { tokens: end, max: context, context });
        }
        Ok(embeds.broadcast_add(&self.positions.dequantize_rows(start..end, self.dtype)?)?)
    }

    fn block(
        &self,
        layer: usize,
        x: &Tensor,
        past: Option<&KeyValues>,
    ) -> Result<(Tensor, Attended)> {
        let block = &self.blocks[layer];
        let width = self.config.width;
        let qkv = block.qkv.forward(&block.attn_norm.forward(x)?)?;
        let heads_of =
            |part: usize| split_heads(&qkv.narrow(2, part * width, width)?, self.config.heads);
        let (mixed, probs, keys_values) =
            causal_attention(&heads_of(0)?, &heads_of(1)?, &heads_of(2)?, past)?;
        let x = (x + block.o.forward(&mixed)?)?;
        let h = gelu_tanh(&block.up.forward(&block.ffn_norm.forward(&x)?)?)?;
        let x = (&x + block.down.forward(&h)?)?;
        Ok((x, Attended { probs, keys_values }))
    }

    fn head(&self, last: &Tensor) -> Result<Tensor> {
        self.output.forward(&self.output_norm.forward(last)?)
    }
}

//! The llama family (SmolLM, TinyLlama, Llama 3): pre-norm blocks of RMSNorm, grouped-query
//! attention with interleaved rotary positions, and a SwiGLU MLP.

use super::{hyper, token_embedding, Decoder, DecoderConfig, DecoderOutput};
use crate::engine::error::Result;
use crate::engine::frozen_linear::FrozenLinear;
use crate::engine::gguf::GgufFile;
use crate::engine::layers::{causal_attention, rms_norm, split_heads, Rope};
use crate::engine::weights::QuantizedMatrix;
use candle_core::{DType, Tensor};

struct Block {
    attn_norm: Tensor,
    q: FrozenLinear,
    k: FrozenLinear,
    v: FrozenLinear,
    o: FrozenLinear,
    ffn_norm: Tensor,
    gate: FrozenLinear,
    up: FrozenLinear,
    down: FrozenLinear,
}

pub struct Llama {
    config: DecoderConfig,
    dtype: DType,
    eps: f64,
    rope: Rope,
    embedding: QuantizedMatrix,
    blocks: Vec<Block>,
    output_norm: Tensor,
    output: FrozenLinear,
}

impl Llama {
    pub fn load(file: &GgufFile, dtype: DType) -> Result<Box<dyn Decoder>> {
        let arch = "llama";
        let width = hyper(file, arch, "embedding_length")?;
        let heads = hyper(file, arch, "attention.head_count")?;
        let kv_heads = file.usize_or(&format!("{arch}.attention.head_count_kv"), heads)?;
        let layers = hyper(file, arch, "block_count")?;
        let hidden = hyper(file, arch, "feed_forward_length")?;
        let context_length = hyper(file, arch, "context_length")?;
        if heads == 0 || kv_heads == 0 || width % heads != 0 || heads % kv_heads != 0 {
            return Err(crate::engine::error::EngineError::CorruptGguf(format!(
                "{heads} heads / {kv_heads} key-value heads do not divide width {width}"
            )));
        }
        let head_dim = width / heads;
        let kv_width = kv_heads * head_dim;
        let eps = file.f64("llama.attention.layer_norm_rms_epsilon")?;
        let theta = file.f64_or("llama.rope.freq_base", 10_000.0)?;
        let freq_factors = match file.has_tensor("rope_freqs.weight") {
            true => Some(file.vector("rope_freqs.weight", head_dim / 2, DType::F64)?.to_vec1::<f64>()?),
            false => None,
        };

        let embedding = token_embedding(file, width)?;
        let vocab = embedding.rows();
        let linear = |name: String, rows, cols| file.matrix(&name, rows, cols).map(FrozenLinear::new);
        let blocks = (0..layers)
            .map(|l| {
                let p = format!("blk.{l}");
                Ok(Block {
                    attn_norm: file.vector(&format!("{p}.attn_norm.weight"), width, dtype)?,
                    q: linear(format!("{p}.attn_q.weight"), width, width)?,
                    k: linear(format!("{p}.attn_k.weight"), kv_width, width)?,
                    v: linear(format!("{p}.attn_v.weight"), kv_width, width)?,
                    o: linear(format!("{p}.attn_output.weight"), width, width)?,
                    ffn_norm: file.vector(&format!("{p}.ffn_norm.weight"), width, dtype)?,
                    gate: linear(format!("{p}.ffn_gate.weight"), hidden, width)?,
                    up: linear(format!("{p}.ffn_up.weight"), hidden, width)?,
                    down: linear(format!("{p}.ffn_down.weight"), width, hidden)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        // Tied models (SmolLM) have no output matrix and reuse the token embedding.
        let output = match file.has_tensor("output.weight") {
            true => FrozenLinear::new(file.matrix("output.weight", vocab, width)?),
            false => FrozenLinear::new(embedding.clone()),
        };
        let config = DecoderConfig { architecture: arch.into(), layers, heads, kv_heads, width, vocab, context_length };
        Ok(Box::new(Llama {
            config,
            dtype,
            eps,
            rope: Rope::new(head_dim, theta, freq_factors),
            embedding,
            blocks,
            output_norm: file.vector("output_norm.weight", width, dtype)?,
            output,
        }))
    }

    fn block(&self, block: &Block, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let h = rms_norm(x, &block.attn_norm, self.eps)?;
        let q = self.rope.apply_interleaved(&split_heads(&block.q.forward(&h)?, self.config.heads)?)?;
        let k = self.rope.apply_interleaved(&split_heads(&block.k.forward(&h)?, self.config.kv_heads)?)?;
        let v = split_heads(&block.v.forward(&h)?, self.config.kv_heads)?;
        let (mixed, probs) = causal_attention(&q, &k, &v)?;
        let x = (x + block.o.forward(&mixed)?)?;
        let h = rms_norm(&x, &block.ffn_norm, self.eps)?;
        let gated = (block.gate.forward(&h)?.silu()? * block.up.forward(&h)?)?;
        let x = (&x + block.down.forward(&gated)?)?;
        Ok((x, probs))
    }
}

impl Decoder for Llama {
    fn config(&self) -> &DecoderConfig {
        &self.config
    }

    fn dtype(&self) -> DType {
        self.dtype
    }

    fn embed(&self, ids: &[u32]) -> Result<Tensor> {
        self.embedding.gather_rows(ids, self.dtype)
    }

    fn forward(&self, embeds: &Tensor) -> Result<DecoderOutput> {
        let seq = embeds.dim(1)?;
        let mut x = embeds.clone();
        let mut attentions = Vec::with_capacity(self.blocks.len());
        for block in &self.blocks {
            let (next, probs) = self.block(block, &x)?;
            x = next;
            attentions.push(probs);
        }
        let last = x.narrow(1, seq - 1, 1)?.squeeze(1)?;
        let last_logits = self.output.forward(&rms_norm(&last, &self.output_norm, self.eps)?)?;
        Ok(DecoderOutput { last_logits, attentions })
    }
}

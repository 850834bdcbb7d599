//! The llama family (SmolLM, TinyLlama, Llama 3) and its close relatives: pre-norm blocks of
//! RMSNorm, grouped-query attention with rotary positions, and a SwiGLU MLP. A `Family` says what
//! tells a relative apart (qwen2.rs is one).

use crate::engine::cpu::arch::{
    head_dim, hyper, output_projection, projection, token_embedding, Attended, Bias, Decoder,
    DecoderConfig,
};
use crate::engine::cpu::layers::{
    causal_attention, rms_norm, split_heads, KeyValues, Projection, Rope, RopeLayout,
};
use crate::engine::cpu::ops::linear::FrozenLinear;
use crate::engine::cpu::ops::swiglu::swiglu;
use crate::engine::error::Result;
use crate::engine::model::gguf::GgufFile;
use crate::engine::model::weights::QuantizedMatrix;
use candle_core::{DType, Tensor};

/// What differs between the llama-like families.
pub(super) struct Family {
    /// `general.architecture`, also the prefix of the hyper-parameter keys.
    pub name: &'static str,
    pub rope: RopeLayout,
    /// Biases of the query, key and value projections. The other projections use one when present.
    pub qkv_bias: Bias,
}

const LLAMA: Family =
    Family { name: "llama", rope: RopeLayout::Interleaved, qkv_bias: Bias::IfPresent };

struct Block {
    attn_norm: Tensor,
    q: Projection,
    k: Projection,
    v: Projection,
    o: Projection,
    ffn_norm: Tensor,
    gate: Projection,
    up: Projection,
    down: Projection,
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
        Self::load_family(file, dtype, &LLAMA)
    }

    pub(super) fn load_family(
        file: &GgufFile,
        dtype: DType,
        family: &Family,
    ) -> Result<Box<dyn Decoder>> {
        let arch = family.name;
        let width = hyper(file, arch, "embedding_length")?;
        let heads = hyper(file, arch, "attention.head_count")?;
        let kv_heads = file.usize_or(&format!("{arch}.attention.head_count_kv"), heads)?;
        let layers = hyper(file, arch, "block_count")?;
        let hidden = hyper(file, arch, "feed_forward_length")?;
        let context_length = hyper(file, arch, "context_length")?;
        let head_dim = head_dim(width, heads, kv_heads)?;
        let kv_width = kv_heads * head_dim;
        let eps = file.f64(&format!("{arch}.attention.layer_norm_rms_epsilon"))?;
        let theta = file.f64_or(&format!("{arch}.rope.freq_base"), 10_000.0)?;
        let freq_factors = match file.has_tensor("rope_freqs.weight") {
            true => {
                Some(file.vector("rope_freqs.weight", head_dim / 2, DType::F64)?.to_vec1::<f64>()?)
            }
            false => None,
        };

        let embedding = token_embedding(file, width)?;
        let vocab = embedding.rows();
        let blocks = (0..layers)
            .map(|l| {
                let p = format!("blk.{l}");
                let linear = |name: &str, rows, cols, bias| {
                    projection(file, &format!("{p}.{name}"), rows, cols, bias, dtype)
                };
                Ok(Block {
                    attn_norm: file.vector(&format!("{p}.attn_norm.weight"), width, dtype)?,
                    q: linear("attn_q", width, width, family.qkv_bias)?,
                    k: linear("attn_k", kv_width, width, family.qkv_bias)?,
                    v: linear("attn_v", kv_width, width, family.qkv_bias)?,
                    o: linear("attn_output", width, width, Bias::IfPresent)?,
                    ffn_norm: file.vector(&format!("{p}.ffn_norm.weight"), width, dtype)?,
                    gate: linear("ffn_gate", hidden, width, Bias::IfPresent)?,
                    up: linear("ffn_up", hidden, width, Bias::IfPresent)?,
                    down: linear("ffn_down", width, hidden, Bias::IfPresent)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let config = DecoderConfig {
            architecture: arch.into(),
            layers,
            heads,
            kv_heads,
            width,
            ffn_width: hidden,
            vocab,
            context_length,
        };
        Ok(Box::new(Llama {
            config,
            dtype,
            eps,
            rope: Rope::new(head_dim, theta, freq_factors, family.rope),
            output: output_projection(file, &embedding)?,
            embedding,
            blocks,
            output_norm: file.vector("output_norm.weight", width, dtype)?,
        }))
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

    fn token_embeddings(&self) -> &QuantizedMatrix {
        &self.embedding
    }

    /// The blocks read the embeddings as they are: positions enter through the rotation.
    fn stream(&self, embeds: &Tensor, _start: usize) -> Result<Tensor> {
        Ok(embeds.clone())
    }

    fn block(
        &self,
        layer: usize,
        x: &Tensor,
        past: Option<&KeyValues>,
    ) -> Result<(Tensor, Attended)> {
        let block = &self.blocks[layer];
        let start = past.map(KeyValues::positions).transpose()?.unwrap_or(0);
        let h = rms_norm(x, &block.attn_norm, self.eps)?;
        let q = self.rope.apply(&split_heads(&block.q.forward(&h)?, self.config.heads)?, start)?;
        let k =
            self.rope.apply(&split_heads(&block.k.forward(&h)?, self.config.kv_heads)?, start)?;
        let v = split_heads(&block.v.forward(&h)?, self.config.kv_heads)?;
        let (mixed, probs, keys_values) = causal_attention(&q, &k, &v, past)?;
        let x = (x + block.o.forward(&mixed)?)?;
        let h = rms_norm(&x, &block.ffn_norm, self.eps)?;
        let gated = swiglu(&block.gate.forward(&h)?, &block.up.forward(&h)?)?;
        let x = (&x + block.down.forward(&gated)?)?;
        Ok((x, Attended { probs, keys_values }))
    }

    fn head(&self, last: &Tensor) -> Result<Tensor> {
        self.output.forward(&rms_norm(last, &self.output_norm, self.eps)?)
    }
}

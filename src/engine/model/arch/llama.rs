//! The llama family (SmolLM, TinyLlama, Llama 3) and its close relatives: pre-norm blocks of
//! RMSNorm, grouped-query attention with rotary positions, and a SwiGLU MLP. A `Family` says what
//! tells a relative apart (qwen2.rs is one).

use super::{
    head_dim, hyper, linear, norm, output_projection, token_embedding, Architecture, Bias,
    BlockWeights, DecoderConfig, MlpKind, NormKind, Qkv, RopeLayout, RopeSpec,
};
use crate::engine::error::Result;
use crate::engine::model::gguf::GgufFile;
use candle_core::DType;

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

pub(super) fn read(file: &GgufFile) -> Result<Architecture> {
    read_family(file, &LLAMA)
}

pub(super) fn read_family(file: &GgufFile, family: &Family) -> Result<Architecture> {
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
    let factors = match file.has_tensor("rope_freqs.weight") {
        true => Some(
            file.matrix("rope_freqs.weight", 1, head_dim / 2)?
                .dequantize(DType::F64)?
                .flatten_all()?
                .to_vec1::<f64>()?,
        ),
        false => None,
    };

    let embedding = token_embedding(file, width)?;
    let vocab = embedding.rows();
    let blocks = (0..layers)
        .map(|l| {
            let p = format!("blk.{l}");
            let linear = |name: &str, rows, cols, bias| {
                linear(file, &format!("{p}.{name}"), rows, cols, bias)
            };
            Ok(BlockWeights {
                attn_norm: norm(file, &format!("{p}.attn_norm"), width, false)?,
                qkv: Qkv::Separate {
                    q: linear("attn_q", width, width, family.qkv_bias)?,
                    k: linear("attn_k", kv_width, width, family.qkv_bias)?,
                    v: linear("attn_v", kv_width, width, family.qkv_bias)?,
                },
                o: linear("attn_output", width, width, Bias::IfPresent)?,
                ffn_norm: norm(file, &format!("{p}.ffn_norm"), width, false)?,
                gate: Some(linear("ffn_gate", hidden, width, Bias::IfPresent)?),
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
    Ok(Architecture {
        config,
        output: output_projection(file, &embedding)?,
        embedding,
        positions: None,
        rope: Some(RopeSpec::new(head_dim, theta, factors, family.rope)),
        norm: NormKind::Rms { eps },
        mlp: MlpKind::SwiGlu,
        blocks,
        output_norm: norm(file, "output_norm", width, false)?,
    })
}

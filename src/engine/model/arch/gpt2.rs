//! GPT-2: learned absolute positions added to the token embeddings, pre-LayerNorm blocks (every
//! norm and projection with a bias) of multi-head attention through one fused query/key/value
//! projection, and a GELU MLP. The output projection is the token embedding unless the file has
//! its own.

use super::{
    head_dim, hyper, linear, norm, output_projection, token_embedding, Architecture, Bias,
    BlockWeights, DecoderConfig, MlpKind, NormKind, Qkv,
};
use crate::engine::error::Result;
use crate::engine::model::gguf::GgufFile;

const ARCH: &str = "gpt2";

pub(super) fn read(file: &GgufFile) -> Result<Architecture> {
    let width = hyper(file, ARCH, "embedding_length")?;
    let heads = hyper(file, ARCH, "attention.head_count")?;
    let layers = hyper(file, ARCH, "block_count")?;
    let hidden = file.usize_or(&format!("{ARCH}.feed_forward_length"), width.saturating_mul(4))?;
    let context_length = hyper(file, ARCH, "context_length")?;
    let eps = file.f64(&format!("{ARCH}.attention.layer_norm_epsilon"))?;
    head_dim(width, heads, heads)?; // the heads must split the width evenly

    let embedding = token_embedding(file, width)?;
    let blocks = (0..layers)
        .map(|l| {
            let p = format!("blk.{l}");
            let linear = |name: &str, rows, cols| {
                linear(file, &format!("{p}.{name}"), rows, cols, Bias::Required)
            };
            let norm = |name: &str| norm(file, &format!("{p}.{name}"), width, true);
            Ok(BlockWeights {
                attn_norm: norm("attn_norm")?,
                qkv: Qkv::Fused(linear("attn_qkv", width.saturating_mul(3), width)?),
                o: linear("attn_output", width, width)?,
                ffn_norm: norm("ffn_norm")?,
                gate: None,
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
    Ok(Architecture {
        config,
        positions: Some(file.matrix("position_embd.weight", context_length, width)?),
        output: output_projection(file, &embedding)?,
        embedding,
        rope: None,
        norm: NormKind::Layer { eps },
        mlp: MlpKind::GeluTanh,
        blocks,
        output_norm: norm(file, "output_norm", width, true)?,
    })
}

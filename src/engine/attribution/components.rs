//! Which parts of the model wrote the prediction (component attribution), from one forward pass
//! and one backward pass on the CPU:
//! - **direct logit attribution**: the explained logit (the target's, or the target's minus the
//!   foil's) as a sum over what each component writes into the residual stream at the last
//!   position (the embedding, each query head through its slice of the output projection, each
//!   MLP, the biases), read through the final norm with its scale (and, for a LayerNorm, its
//!   centring) held at their values for this input. The parts then add up to the logit exactly;
//!   what rounding leaves is reported as `residual`;
//! - **the logit lens**: the stream after each block through the final norm and the unembedding;
//! - **the token × layer map**: gradient × activation of the problem's explained value at the
//!   stream entering each block, per position (the gradient taken a block at a time).

use crate::engine::attribution::problem::{top_indices, Prediction, Problem};
use crate::engine::cpu::decoder::{last_position, CpuDecoder, Decoder};
use crate::engine::cpu::gradient::Tape;
use crate::engine::error::Result;
use crate::engine::model::tokenizer::Token;
use candle_core::{DType, Tensor, D};
use serde::{Deserialize, Serialize};

/// How many tokens the logit lens lists per layer.
const LENS_TOP: usize = 3;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ComponentKind {
    /// The stream entering the first block (for gpt2: token plus position embedding).
    Embed,
    Head,
    Mlp,
    /// A block's biases (output projection, value bias through it, MLP output), or the final
    /// norm's (`layer` none).
    Bias,
}

/// One component's share of the explained logit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Component {
    pub kind: ComponentKind,
    /// Its block (none for the embedding and the final norm's bias).
    pub layer: Option<usize>,
    /// A query head's index in its block.
    pub head: Option<usize>,
    /// The key/value head a query head shares with others (grouped-query attention).
    pub kv_head: Option<usize>,
    pub value: f64,
}

/// The stream after one block, read as the model reads its last one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LensLayer {
    pub layer: usize,
    /// p(target) there.
    pub prob: f32,
    /// The target's rank there (0: the top token).
    pub rank: usize,
    pub top: Vec<Prediction>,
}

/// A problem's component attribution.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Components {
    pub tokens: Vec<Token>,
    pub target: Prediction,
    pub foil: Option<Prediction>,
    /// The explained logit: the target's, minus the foil's when there is one.
    pub logit: f64,
    pub components: Vec<Component>,
    /// `logit − Σ values`: rounding only.
    pub residual: f64,
    /// One entry per block; the last is the model's own output.
    pub logit_lens: Vec<LensLayer>,
    /// Blocks × tokens: gradient × activation of the problem's explained value at the stream
    /// entering each block. Row 0 is gradient × input on the embeddings (for gpt2: on the
    /// embeddings plus positions, the stream the first block reads).
    pub layer_saliency: Vec<Vec<f32>>,
    /// Blocks × heads × tokens: each head's attention from the last position.
    pub attention: Vec<Vec<Vec<f32>>>,
}

/// The component attribution of `problem` (whose explained value the token × layer map takes).
pub fn components(problem: &Problem<'_>) -> Result<Components> {
    let model = problem.model;
    let cpu = CpuDecoder::of(model, problem.context())?;
    let config = model.config();
    let embeds = problem.input().unsqueeze(0)?;
    let (target, foil) = (problem.objective.target, problem.objective.foil);
    let ids: Vec<u32> = std::iter::once(target).chain(foil).collect();
    let rows = model.architecture.output.gather_rows(&ids, cpu.dtype())?;
    let direction = match foil {
        Some(_) => (rows.get(0)? - rows.get(1)?)?,
        None => rows.get(0)?,
    };

    // What each part writes at the last position, in order: the embedding, then per block its
    // heads, its biases and its MLP.
    let mut parts: Vec<(ComponentKind, Option<usize>, Option<usize>, Tensor)> = Vec::new();
    let mut x = cpu.stream(&embeds, 0)?;
    parts.push((ComponentKind::Embed, None, None, last_position(&x)?.squeeze(0)?));
    let (mut lens, mut attention) = (Vec::new(), Vec::new());
    for layer in 0..config.layers {
        let (next, block) = cpu.block_parts(layer, &x)?;
        for head in 0..config.heads {
            parts.push((ComponentKind::Head, Some(layer), Some(head), block.heads.get(head)?));
        }
        parts.push((ComponentKind::Bias, Some(layer), None, block.bias));
        parts.push((ComponentKind::Mlp, Some(layer), None, block.mlp));
        attention.push(block.attention.to_dtype(DType::F32)?.to_vec2::<f32>()?);
        x = next;
        lens.push(lens_layer(problem, layer, &cpu.head(&last_position(&x)?)?.squeeze(0)?)?);
    }
    let last = last_position(&x)?.squeeze(0)?;
    let (readout, norm_bias) = cpu.readout(&last, &direction)?;
    let group = (config.heads / config.kv_heads.max(1)).max(1);
    let mut components: Vec<Component> = parts
        .into_iter()
        .map(|(kind, layer, head, written)| {
            let value =
                (&readout * written.to_dtype(DType::F64)?)?.sum_all()?.to_scalar::<f64>()?;
            Ok(Component { kind, layer, head, kv_head: head.map(|h| h / group), value })
        })
        .collect::<Result<_>>()?;
    if let Some(value) = norm_bias {
        components.push(Component {
            kind: ComponentKind::Bias,
            layer: None,
            head: None,
            kv_head: None,
            value,
        });
    }
    let logits = problem.input_logits().squeeze(0)?.to_dtype(DType::F64)?.to_vec1::<f64>()?;
    let logit = logits[target as usize] - foil.map_or(0.0, |f| logits[f as usize]);
    let residual = logit - components.iter().map(|c| c.value).sum::<f64>();
    Ok(Components {
        tokens: problem.tokens.clone(),
        target: Prediction::of(problem, target)?,
        foil: foil.map(|f| Prediction::of(problem, f)).transpose()?,
        logit,
        components,
        residual,
        logit_lens: lens,
        layer_saliency: layer_saliency(problem, &cpu, &embeds)?,
        attention,
    })
}

/// The logit lens at `layer`: the target's probability and rank, and the top tokens, of
/// `logits` `(vocab,)`.
fn lens_layer(problem: &Problem<'_>, layer: usize, logits: &Tensor) -> Result<LensLayer> {
    let probs: Vec<f32> =
        candle_nn::ops::softmax(logits, D::Minus1)?.to_dtype(DType::F32)?.to_vec1()?;
    let target = problem.objective.target as usize;
    let prob = probs[target];
    let rank = probs.iter().filter(|&&p| p > prob).count();
    let top = top_indices(&probs, LENS_TOP)
        .into_iter()
        .map(|id| {
            let text = problem.model.tokenizer.token(id)?.text;
            Ok(Prediction { id, text, prob: probs[id as usize] })
        })
        .collect::<Result<_>>()?;
    Ok(LensLayer { layer, prob, rank, top })
}

/// Gradient × activation of the explained value at the stream entering each block, per position:
/// the gradient taken one block at a time, so that each block's input has its own.
fn layer_saliency(
    problem: &Problem<'_>,
    cpu: &CpuDecoder,
    embeds: &Tensor,
) -> Result<Vec<Vec<f32>>> {
    let tape = Tape::record(cpu, embeds, 1)?;
    let values = problem.objective.score(tape.logits())?;
    let mut rows = vec![Vec::new(); problem.model.config().layers];
    tape.gradient_with(cpu, values, |layer, input, gradient| {
        // The first block reads the embeddings plus, for gpt2, positions; the gradient there is
        // the embeddings' own.
        let stream = if layer == 0 { cpu.stream(input, 0)? } else { input.clone() };
        if let Some(row) = rows.get_mut(layer) {
            *row = (stream * gradient)?
                .sum(D::Minus1)?
                .squeeze(0)?
                .to_dtype(DType::F32)?
                .to_vec1::<f32>()?;
        }
        Ok(())
    })?;
    Ok(rows)
}

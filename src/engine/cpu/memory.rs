//! How much forward graph a CPU gradient keeps, estimated from the blocks' operations: what decides
//! how many inputs a gradient batch holds and how many blocks' graphs a gradient keeps at once
//! (the rest is recomputed, `gradient.rs`), within the run's [`GraphBudget`].
//!
//! The per-layer counts come from the blocks' operations; one factor for each count was fitted to
//! the wasm memory measured in Chromium (`attribution::memory` holds the measurements).

use crate::engine::model::arch::DecoderConfig;
use crate::engine::runtime::context::GraphBudget;

/// Bytes of one f32 value.
pub const F32_BYTES: f64 = 4.0;

/// Measured bytes kept per token and layer over the count from the operations below: candle keeps
/// a few more intermediate tensors than the count sees (fitted).
const KEPT_VALUES_FACTOR: f64 = 1.55;

/// `(heads, seq, seq)` maps alive per layer at the peak: the scores and the probabilities the
/// causal softmax keeps, plus the backward pass's gradients of them (fitted).
const ATTENTION_MAPS: f64 = 2.45;

/// More `(heads, seq, seq)` maps alive while a segment is recomputed and backpropagated, beyond
/// its graph: the incoming gradient's and the causal softmax backward's temporaries, and the
/// allocator's fragmentation from segments of different shapes (fitted to segmented runs).
const RECOMPUTE_MAPS: f64 = 12.0;

/// f32 values one layer's forward graph keeps per token, counted on the llama block (the largest
/// family; GPT-2's blocks keep fewer): two RMSNorms of 3 · width each; the query projection with
/// its head-major copy and its rotation (6 · width); keys (6 · kv width) and values (2 · kv width)
/// likewise; the key/value heads repeated for the query heads (2 · width); the attention output and
/// its reshape (2 · width); the output projection and two residual sums (3 · width); the gated MLP's
/// gate, activation, up projection and product (4 · ffn width); its down projection (width).
fn values_per_token(config: &DecoderConfig) -> f64 {
    // In f64: the sizes come from the file, and a hostile one must not overflow.
    let head_width = config.width as f64 / config.heads.max(1) as f64;
    let kv_width = config.kv_heads as f64 * head_width;
    20.0 * config.width as f64 + 8.0 * kv_width + 4.0 * config.ffn_width as f64
}

/// Tokens per gradient batch beyond which batching gains nothing: the weights are dequantized
/// once per batch, and larger products run no faster per row.
const GRADIENT_BATCH_TOKENS: usize = 256;

/// Bytes one layer's forward graph keeps for one sequence of `tokens` tokens.
pub(crate) fn layer_graph_bytes(config: &DecoderConfig, tokens: usize) -> f64 {
    let n = tokens as f64;
    F32_BYTES
        * (KEPT_VALUES_FACTOR * values_per_token(config) * n
            + ATTENTION_MAPS * config.heads as f64 * n * n)
}

/// How many sequences of `tokens` tokens one gradient batch holds: as many whole graphs as fit
/// `budget`, up to [`GRADIENT_BATCH_TOKENS`] tokens, at least one.
pub fn gradient_batch_rows(config: &DecoderConfig, tokens: usize, budget: GraphBudget) -> usize {
    let whole_graph = layer_graph_bytes(config, tokens) * config.layers.max(1) as f64;
    ((budget.0 / whole_graph) as usize).min(GRADIENT_BATCH_TOKENS / tokens.max(1)).max(1)
}

/// How many blocks' graphs a gradient of `rows` sequences of `tokens` tokens keeps at once: all of
/// them when they fit `budget`, else as many as fit, at least one.
pub fn layers_per_segment(
    config: &DecoderConfig,
    tokens: usize,
    rows: usize,
    budget: GraphBudget,
) -> usize {
    let per_layer = rows as f64 * layer_graph_bytes(config, tokens);
    ((budget.0 / per_layer) as usize).clamp(1, config.layers.max(1))
}

/// A gradient's peak: one segment's graph, and the input of each segment.
pub fn gradient_bytes(
    config: &DecoderConfig,
    tokens: usize,
    rows: usize,
    budget: GraphBudget,
) -> f64 {
    let per_segment = layers_per_segment(config, tokens, rows, budget);
    let segments = config.layers.div_ceil(per_segment);
    let rows_tokens = rows as f64 * tokens as f64;
    let inputs = F32_BYTES * segments as f64 * rows_tokens * config.width as f64;
    let recompute = match segments {
        1 => 0.0,
        _ => F32_BYTES * RECOMPUTE_MAPS * config.heads as f64 * rows_tokens * tokens as f64,
    };
    per_segment as f64 * rows as f64 * layer_graph_bytes(config, tokens) + inputs + recompute
}

//! How much memory a model and a run need, estimated before they start. The page's engine runs
//! in a wasm32 worker, whose memory can never exceed 4 GiB; running out aborts the worker in the
//! middle of a run. The page compares these estimates with [`USABLE_WASM_MEMORY`] before it loads
//! a model and before each run, and refuses with a message instead.
//!
//! What stays alive at a run's peak (a gradient's backward pass):
//! - the model file: quantized weights stay in it (`weights.rs`);
//! - the runtime: the wasm module's data, the tokenizer, and the dequantization scratch (one block
//!   of at most 16 MiB of f32 rows at a time);
//! - the forward graph the backward pass walks: per layer, tensors linear in the number of tokens,
//!   and `(heads, seq, seq)` attention maps. A [`GraphBudget`] bounds it (the page's is
//!   `GRAPH_BUDGET_BYTES`): a batch of inputs
//!   (integrated gradients' path points, SmoothGrad's noisy copies) holds as many whole graphs as
//!   fit, and a graph larger than the budget is taken a segment of blocks at a time, each
//!   segment's input kept (`gradient.rs`).
//!
//! The graph's share comes from `cpu::memory`, whose counts describe a graph that kept more
//! tensors than the engine's own ops do now: the estimates are upper bounds, in f32 (the precision
//! the page computes in). `make bench` measures the page's peak memory next to the estimate for
//! each configuration it runs (`BENCHMARKS.md`), which is where a drift would show.

use crate::engine::cpu::memory::gradient_bytes;
use crate::engine::model::arch::DecoderConfig;
use crate::engine::runtime::context::GraphBudget;

/// The most memory a wasm32 instance can address.
pub const WASM32_MEMORY: u64 = 4 << 30;

/// What the page lets an estimate reach: a tenth of the address space stays free for what the
/// estimate does not model (allocator fragmentation, families whose blocks keep more tensors).
pub const USABLE_WASM_MEMORY: u64 = WASM32_MEMORY / 10 * 9;

/// The runtime beyond the model file: the wasm module's data, the tokenizer and the decoding
/// scratch.
const RUNTIME_BYTES: f64 = 25e6;

/// What a model needs before any run: its file and the runtime.
pub fn estimate_load_bytes(file_bytes: u64) -> u64 {
    file_bytes.saturating_add(RUNTIME_BYTES as u64)
}

/// The peak of a run on `tokens` tokens: the model and a gradient of `batch_rows` sequences of
/// that length (a batch of `AttributionMethod::batch_rows`; 0, for methods that take only the text's own
/// gradient, counts as one).
pub fn estimate_run_bytes(
    config: &DecoderConfig,
    file_bytes: u64,
    tokens: usize,
    batch_rows: usize,
    budget: GraphBudget,
) -> u64 {
    estimate_load_bytes(file_bytes)
        + gradient_bytes(config, tokens, batch_rows.max(1), budget).ceil() as u64
}

/// The longest text, up to `up_to` tokens, such that it and every shorter one fit in `limit`
/// bytes; `batch_rows(tokens)` gives the run's extra graphs. 0 when not even one token fits.
pub fn max_tokens_within(
    config: &DecoderConfig,
    file_bytes: u64,
    limit: u64,
    up_to: usize,
    budget: GraphBudget,
    batch_rows: impl Fn(usize) -> usize,
) -> usize {
    // Not a binary search: batches hold fewer rows as texts grow, so the estimate is not monotone.
    (1..=up_to)
        .take_while(|&n| estimate_run_bytes(config, file_bytes, n, batch_rows(n), budget) <= limit)
        .last()
        .unwrap_or(0)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::engine::cpu::memory::{gradient_batch_rows, layer_graph_bytes, layers_per_segment};
    use crate::engine::runtime::context::GRAPH_BUDGET_BYTES;

    pub(crate) const PAGE: GraphBudget = GraphBudget(GRAPH_BUDGET_BYTES);

    /// SmolLM2-135M-Instruct Q4_1, the default model.
    pub(crate) fn smollm2() -> DecoderConfig {
        DecoderConfig {
            architecture: "llama".into(),
            layers: 30,
            heads: 9,
            kv_heads: 3,
            width: 576,
            ffn_width: 1536,
            vocab: 49152,
            context_length: 8192,
        }
    }
    pub(crate) const SMOLLM2_FILE: u64 = 98_362_432;

    #[test]
    fn batches_add_whole_graphs_while_they_fit() {
        let (config, file) = (smollm2(), SMOLLM2_FILE);
        let rows = gradient_batch_rows(&config, 40, PAGE);
        assert!(rows >= 3, "{rows}");
        let one = estimate_run_bytes(&config, file, 40, 1, PAGE) - estimate_load_bytes(file);
        let three = estimate_run_bytes(&config, file, 40, 3, PAGE) - estimate_load_bytes(file);
        assert!(three.abs_diff(3 * one) <= 3, "{one} {three}");
        assert_eq!(
            estimate_run_bytes(&config, file, 40, 0, PAGE),
            estimate_run_bytes(&config, file, 40, 1, PAGE)
        );
    }

    #[test]
    fn long_texts_keep_one_segment_s_graph() {
        let config = smollm2();
        for tokens in [200, 300, 512, 2048] {
            let per_segment = layers_per_segment(&config, tokens, 1, PAGE);
            assert!(per_segment < config.layers, "{tokens} tokens: {per_segment}");
            let graph = per_segment as f64 * layer_graph_bytes(&config, tokens);
            // One segment's graph within the budget (a single block may exceed it on huge texts).
            assert!(
                per_segment == 1 || graph <= GRAPH_BUDGET_BYTES * 1.01,
                "{tokens} tokens: {graph}"
            );
        }
        assert_eq!(gradient_batch_rows(&config, 512, PAGE), 1);
    }

    #[test]
    fn a_larger_budget_keeps_more_of_the_graph() {
        let (config, larger) = (smollm2(), GraphBudget(1.5 * GRAPH_BUDGET_BYTES));
        for tokens in [64, 200, 256, 512] {
            let (page, more) = (
                layers_per_segment(&config, tokens, 1, PAGE),
                layers_per_segment(&config, tokens, 1, larger),
            );
            assert!(
                more >= page && (page == config.layers || more > page),
                "{tokens} tokens: {page} → {more}"
            );
        }
        assert!(gradient_batch_rows(&config, 64, larger) > gradient_batch_rows(&config, 64, PAGE));
        assert_eq!(GraphBudget::default(), PAGE);
    }

    #[test]
    fn the_longest_text_that_fits_is_the_last_that_fits() {
        let (config, file) = (smollm2(), SMOLLM2_FILE);
        let limit = estimate_run_bytes(&config, file, 100, 0, PAGE);
        assert_eq!(max_tokens_within(&config, file, limit, 512, PAGE, |_| 0), 100);
        assert_eq!(max_tokens_within(&config, file, limit, 80, PAGE, |_| 0), 80);
        assert_eq!(
            max_tokens_within(&config, file, estimate_load_bytes(file), 512, PAGE, |_| 0),
            0
        );
    }

    #[test]
    fn a_file_larger_than_wasm_memory_never_fits() {
        assert!(estimate_load_bytes(5 << 30) > WASM32_MEMORY);
        assert_eq!(max_tokens_within(&smollm2(), 5 << 30, USABLE_WASM_MEMORY, 512, PAGE, |_| 0), 0);
    }
}

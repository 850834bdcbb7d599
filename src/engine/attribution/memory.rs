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
//!   [`GRAPH_BUDGET_BYTES`]): a batch of inputs
//!   (integrated gradients' path points, SmoothGrad's noisy copies) holds as many whole graphs as
//!   fit, and a graph larger than the budget is taken a segment of blocks at a time, each
//!   segment's input kept (`gradient.rs`).
//!
//! The per-layer counts come from the blocks' operations; the runtime and one factor for each
//! count were fitted to the wasm memory measured in Chromium after saliency runs with SmolLM2-135M
//! from 31 to 491 tokens when the whole graph was kept (least squares; every point within 1.1 %),
//! and are checked against runs of every kind (the `MEASURED_*` tables in the tests below). The
//! estimates are in f32, the precision the page computes in.
//!
//! Those measurements predate the engine's own ops (`swiglu`, `rms_norm`, `head_product`, RoPE's
//! `Rotation`), which keep fewer tensors than candle's compositions did: measured since, a run at
//! 512 tokens peaks at about 60 % of the wasm memory it took (`BENCHMARKS.md`), so the estimates
//! now err on the safe side and the counts below describe the older graph. Refitting them would
//! let a large model take longer texts.

use crate::engine::attribution::methods::{AttributionMethod, MethodParams};
use crate::engine::model::arch::DecoderConfig;

/// The most memory a wasm32 instance can address.
pub const WASM32_MEMORY: u64 = 4 << 30;

/// What the page lets an estimate reach: a tenth of the address space stays free for what the
/// estimate does not model (allocator fragmentation, families whose blocks keep more tensors).
pub const USABLE_WASM_MEMORY: u64 = WASM32_MEMORY / 10 * 9;

/// The runtime beyond the model file (fitted; see the module comment).
const RUNTIME_BYTES: f64 = 25e6;

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

const F32_BYTES: f64 = 4.0;

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

/// The most forward graph a gradient keeps alive at once, in bytes as estimated here (see the
/// module comment). A model carries one (`Model::graph_budget`); the front end that loads it
/// chooses it, since only it knows how much memory there is.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GraphBudget(pub f64);

/// The page's budget, the default. Half a GiB keeps the page's peak under 1 GiB with the default
/// model at any length, and keeps whole the graph of a single text up to ~150 tokens, so short
/// texts never compute a block twice.
pub const GRAPH_BUDGET_BYTES: f64 = 512.0 * 1024.0 * 1024.0;

impl Default for GraphBudget {
    fn default() -> Self {
        Self(GRAPH_BUDGET_BYTES)
    }
}

/// Tokens per gradient batch beyond which batching gains nothing: the weights are dequantized
/// once per batch, and larger products run no faster per row.
const GRADIENT_BATCH_TOKENS: usize = 256;

/// Bytes one layer's forward graph keeps for one sequence of `tokens` tokens.
fn layer_graph_bytes(config: &DecoderConfig, tokens: usize) -> f64 {
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
fn gradient_bytes(config: &DecoderConfig, tokens: usize, rows: usize, budget: GraphBudget) -> f64 {
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

/// What a model needs before any run: its file and the runtime.
pub fn estimate_load_bytes(file_bytes: u64) -> u64 {
    file_bytes.saturating_add(RUNTIME_BYTES as u64)
}

/// The peak of a run on `tokens` tokens: the model and a gradient of `batch_rows` sequences of
/// that length (a batch of [`method_batch_rows`]; 0, for methods that take only the text's own
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

/// How many inputs of `tokens` tokens `method` takes gradients at in one batch, besides the text
/// itself: 0 for methods that need only the text's own backward pass.
pub fn method_batch_rows(
    method: &dyn AttributionMethod,
    params: &MethodParams,
    config: &DecoderConfig,
    tokens: usize,
    budget: GraphBudget,
) -> usize {
    method.gradient_inputs(params).min(gradient_batch_rows(config, tokens, budget))
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
mod tests {
    use super::*;
    use crate::engine::attribution::methods;

    const PAGE: GraphBudget = GraphBudget(GRAPH_BUDGET_BYTES);

    /// SmolLM2-135M-Instruct Q4_1, the model the factors were fitted on.
    fn smollm2() -> DecoderConfig {
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
    const SMOLLM2_FILE: u64 = 98_362_432;

    /// (tokens, wasm memory in bytes) after one saliency run in a fresh worker, Chromium 156, when
    /// the whole graph was kept at every length (the points the factors were fitted on; graphs of
    /// these lengths still fit the budget whole).
    const MEASURED_WHOLE_GRAPH: [(usize, u64); 3] =
        [(31, 233_963_520), (61, 349_306_880), (123, 606_011_392)];

    #[test]
    fn whole_graph_estimates_are_close_to_measured_memory() {
        for (tokens, measured) in MEASURED_WHOLE_GRAPH {
            assert_eq!(
                layers_per_segment(&smollm2(), tokens, 1, PAGE),
                30,
                "{tokens} tokens: the whole graph fits"
            );
            let estimate = estimate_run_bytes(&smollm2(), SMOLLM2_FILE, tokens, 0, PAGE);
            let error = estimate as f64 / measured as f64 - 1.0;
            assert!(
                error.abs() < 0.05,
                "{tokens} tokens: estimated {estimate}, measured {measured}"
            );
        }
    }

    /// (method, tokens, wasm memory in bytes) after one run in a fresh worker, Chromium 156, with
    /// the graph budget (integrated gradients with 2 steps of the Gauss–Legendre rule it had then:
    /// its batches, hence its peak, are those of 32 steps from 123 tokens on, and 2 rows at 64
    /// tokens; the adaptive rule's batches are no larger).
    const MEASURED_WITH_BUDGET: [(&str, usize, u64); 11] = [
        ("saliency", 64, 360_775_680),
        ("saliency", 123, 604_176_384),
        ("saliency", 244, 654_966_784),
        ("saliency", 491, 690_290_688),
        ("integrated_gradients", 64, 610_992_128),
        ("integrated_gradients", 123, 611_713_024),
        ("integrated_gradients", 244, 666_238_976),
        ("integrated_gradients", 491, 714_735_616),
        ("attention", 64, 288_686_080),
        ("attention", 244, 482_148_352),
        ("attention", 491, 473_366_528),
    ];

    #[test]
    fn estimates_with_the_budget_are_close_to_measured_memory() {
        // The page's guarantee: no measured run reaches past its estimate by more than the
        // headroom `USABLE_WASM_MEMORY` leaves, and the estimates are not wildly conservative
        // (attention keeps no batch: its estimate is a gradient's, an upper bound).
        let headroom = WASM32_MEMORY - USABLE_WASM_MEMORY;
        let config = smollm2();
        for (method, tokens, measured) in MEASURED_WITH_BUDGET {
            let params = MethodParams { steps: 2, ..MethodParams::default() };
            let rows = method_batch_rows(
                methods::by_name(method).unwrap(),
                &params,
                &config,
                tokens,
                PAGE,
            );
            let estimate = estimate_run_bytes(&config, SMOLLM2_FILE, tokens, rows, PAGE);
            let error = estimate as f64 / measured as f64 - 1.0;
            let tolerance = if method == "attention" { 0.6 } else { 0.05 };
            assert!(
                measured < estimate + headroom && error.abs() < tolerance,
                "{method}, {tokens} tokens: estimated {estimate}, measured {measured} ({:+.1} %)",
                100.0 * error
            );
        }
    }

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
    fn batch_rows_follow_the_method() {
        let (params, config) = (MethodParams::default(), smollm2());
        let by_name = |name| methods::by_name(name).unwrap();
        assert_eq!(method_batch_rows(by_name("saliency"), &params, &config, 64, PAGE), 0);
        assert_eq!(method_batch_rows(by_name("occlusion"), &params, &config, 64, PAGE), 0);
        let ig_rows =
            method_batch_rows(by_name("integrated_gradients"), &params, &config, 64, PAGE);
        assert_eq!(ig_rows, gradient_batch_rows(&config, 64, PAGE));
        assert!((1..=4).contains(&ig_rows), "{ig_rows}");
        // Never more rows than the method has inputs: 4 steps fill a batch of 4.
        let few_steps = MethodParams { steps: 4, ..params.clone() };
        assert_eq!(
            method_batch_rows(by_name("integrated_gradients"), &few_steps, &config, 10, PAGE),
            4
        );
        assert_eq!(method_batch_rows(by_name("smoothgrad"), &params, &config, 512, PAGE), 1);
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
    fn every_method_fits_512_tokens_in_a_gib() {
        // Issue 5's memory goal for the default model, by the estimate (BENCHMARKS.md measures it).
        let (config, file) = (smollm2(), SMOLLM2_FILE);
        for method in methods::METHODS {
            let params = MethodParams::default();
            let fits = max_tokens_within(&config, file, 1 << 30, 512, PAGE, |n| {
                method_batch_rows(*method, &params, &config, n, PAGE)
            });
            assert_eq!(fits, 512, "{}", method.name());
        }
    }

    #[test]
    fn a_file_larger_than_wasm_memory_never_fits() {
        assert!(estimate_load_bytes(5 << 30) > WASM32_MEMORY);
        assert_eq!(max_tokens_within(&smollm2(), 5 << 30, USABLE_WASM_MEMORY, 512, PAGE, |_| 0), 0);
    }
}

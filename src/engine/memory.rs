//! How much memory a model and a run need, estimated before they start. The page's engine runs
//! in a wasm32 worker, whose memory can never exceed 4 GiB; running out aborts the worker in the
//! middle of a run. The page compares these estimates with [`USABLE_WASM_MEMORY`] before it loads
//! a model and before each run, and refuses with a message instead.
//!
//! What stays alive at a run's peak (the backward pass):
//! - the model file: quantized weights stay in it (`weights.rs`);
//! - the runtime: the wasm module's data, the tokenizer, and the dequantization scratch (one block
//!   of at most 16 MiB of f32 rows at a time);
//! - the forward graph of the text, which the backward pass walks: per layer, tensors linear in the
//!   number of tokens, and `(heads, seq, seq)` attention maps;
//! - for methods that take gradients at other inputs (integrated gradients' path points,
//!   SmoothGrad's noisy copies), the graph of one batch of them (`Problem::gradients`).
//!
//! The per-layer counts come from the blocks' operations; the runtime and one factor for each
//! count were fitted to the wasm memory measured in Chromium after saliency runs with SmolLM2-135M
//! from 31 to 491 tokens (least squares; every point within 1.1 %), and checked against batched
//! runs of integrated gradients and SmoothGrad (the measurements are the `MEASURED_*` tables in
//! the tests below). The estimates are in f32, the precision the page computes in.

use super::arch::DecoderConfig;
use super::methods::{AttributionMethod, MethodParams};
use super::problem::gradient_batch_rows;

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

const F32_BYTES: f64 = 4.0;

/// f32 values one layer's forward graph keeps per token, counted on the llama block (the largest
/// family; GPT-2's blocks keep fewer): two RMSNorms of 3 · width each; the query projection with
/// its head-major copy and its rotation (6 · width); keys (6 · kv width) and values (2 · kv width)
/// likewise; the key/value heads repeated for the query heads (2 · width); the attention output and
/// its reshape (2 · width); the output projection and two residual sums (3 · width); the gated MLP's
/// gate, activation, up projection and product (4 · ffn width); its down projection (width).
fn values_per_token(config: &DecoderConfig) -> f64 {
    let head_width = config.width / config.heads.max(1);
    let kv_width = config.kv_heads * head_width;
    (20 * config.width + 8 * kv_width + 4 * config.ffn_width) as f64
}

/// What a model needs before any run: its file and the runtime.
pub fn estimate_load_bytes(file_bytes: u64) -> u64 {
    file_bytes + RUNTIME_BYTES as u64
}

/// The peak of a run on `tokens` tokens: the model, the text's forward graph, and `batch_rows`
/// more graphs of the same length (a batch of [`method_batch_rows`]).
pub fn estimate_run_bytes(config: &DecoderConfig, file_bytes: u64, tokens: usize, batch_rows: usize) -> u64 {
    let n = tokens as f64;
    let per_layer = KEPT_VALUES_FACTOR * values_per_token(config) * n + ATTENTION_MAPS * config.heads as f64 * n * n;
    let graph = F32_BYTES * config.layers as f64 * per_layer;
    estimate_load_bytes(file_bytes) + ((1 + batch_rows) as f64 * graph).ceil() as u64
}

/// How many inputs of `tokens` tokens `method` takes gradients at in one batch, besides the text
/// itself: 0 for methods that need only the text's own backward pass.
pub fn method_batch_rows(method: &dyn AttributionMethod, params: &MethodParams, tokens: usize) -> usize {
    method.gradient_inputs(params).min(gradient_batch_rows(tokens))
}

/// The longest text, up to `up_to` tokens, such that it and every shorter one fit in `limit`
/// bytes; `batch_rows(tokens)` gives the run's extra graphs. 0 when not even one token fits.
pub fn max_tokens_within(
    config: &DecoderConfig,
    file_bytes: u64,
    limit: u64,
    up_to: usize,
    batch_rows: impl Fn(usize) -> usize,
) -> usize {
    // Not a binary search: batches hold fewer rows as texts grow, so the estimate is not monotone.
    (1..=up_to).take_while(|&n| estimate_run_bytes(config, file_bytes, n, batch_rows(n)) <= limit).last().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::methods;

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

    /// (tokens, wasm memory in bytes) after one saliency run in a fresh worker, Chromium 156.
    const MEASURED_SALIENCY: [(usize, u64); 6] = [
        (31, 233_963_520),
        (61, 349_306_880),
        (123, 606_011_392),
        (244, 1_148_977_152),
        (368, 1_788_542_976),
        (491, 2_510_094_336),
    ];

    #[test]
    fn saliency_estimates_are_close_to_measured_memory() {
        for (tokens, measured) in MEASURED_SALIENCY {
            let estimate = estimate_run_bytes(&smollm2(), SMOLLM2_FILE, tokens, 0);
            let error = estimate as f64 / measured as f64 - 1.0;
            assert!(error.abs() < 0.05, "{tokens} tokens: estimated {estimate}, measured {measured}");
        }
    }

    /// (method, tokens, wasm memory in bytes) after one run of another method in a fresh worker,
    /// Chromium 156, default settings (32 steps, 16 samples): integrated gradients and SmoothGrad
    /// keep a batch of extra graphs; occlusion's batches of forward passes without a graph cost a
    /// few tens of MB more than saliency's backward pass on short texts.
    const MEASURED_OTHERS: [(&str, usize, u64); 9] = [
        ("integrated_gradients", 12, 1_108_672_512),
        ("integrated_gradients", 61, 1_277_493_248),
        ("integrated_gradients", 123, 1_558_052_864),
        ("integrated_gradients", 244, 2_147_942_400),
        ("smoothgrad", 61, 1_229_717_504),
        ("smoothgrad", 244, 1_945_894_912),
        ("occlusion", 31, 269_811_712),
        ("occlusion", 61, 390_660_096),
        ("occlusion", 123, 625_737_728),
    ];

    #[test]
    fn other_methods_stay_within_the_headroom() {
        // The page's guarantee: no measured run reaches past its estimate by more than the
        // headroom `USABLE_WASM_MEMORY` leaves; and the estimates are not wildly conservative.
        let headroom = WASM32_MEMORY - USABLE_WASM_MEMORY;
        for (method, tokens, measured) in MEASURED_OTHERS {
            let rows = method_batch_rows(methods::by_name(method).unwrap(), &MethodParams::default(), tokens);
            let estimate = estimate_run_bytes(&smollm2(), SMOLLM2_FILE, tokens, rows);
            let error = estimate as f64 / measured as f64 - 1.0;
            assert!(measured < estimate + headroom && error.abs() < 0.15, "{method}, {tokens} tokens: estimated {estimate}, measured {measured}");
        }
    }

    #[test]
    fn the_brief_s_figures_hold() {
        // 0.36 GB at 64 tokens and 2.6 GB at 512 for saliency, as recorded in settings.rs.
        let gb = |tokens| estimate_run_bytes(&smollm2(), SMOLLM2_FILE, tokens, 0) as f64 / 1e9;
        assert!((gb(64) - 0.36).abs() < 0.03, "{}", gb(64));
        assert!((gb(512) - 2.6).abs() < 0.15, "{}", gb(512));
    }

    #[test]
    fn batches_add_whole_graphs() {
        let (config, file) = (smollm2(), SMOLLM2_FILE);
        let one = estimate_run_bytes(&config, file, 100, 0) - estimate_load_bytes(file);
        let three = estimate_run_bytes(&config, file, 100, 2) - estimate_load_bytes(file);
        assert!(three.abs_diff(3 * one) <= 3, "{one} {three}");
    }

    #[test]
    fn batch_rows_follow_the_method() {
        let params = MethodParams::default();
        let by_name = |name| methods::by_name(name).unwrap();
        assert_eq!(method_batch_rows(by_name("saliency"), &params, 64), 0);
        assert_eq!(method_batch_rows(by_name("occlusion"), &params, 64), 0);
        assert_eq!(method_batch_rows(by_name("integrated_gradients"), &params, 64), gradient_batch_rows(64));
        // Never more rows than the method has inputs: 4 steps fill a batch of 4.
        let few_steps = MethodParams { steps: 4, ..params.clone() };
        assert_eq!(method_batch_rows(by_name("integrated_gradients"), &few_steps, 10), 4);
        assert_eq!(method_batch_rows(by_name("smoothgrad"), &params, 512), 1);
    }

    #[test]
    fn the_longest_text_that_fits_is_the_last_that_fits() {
        let (config, file) = (smollm2(), SMOLLM2_FILE);
        let limit = estimate_run_bytes(&config, file, 300, 0);
        assert_eq!(max_tokens_within(&config, file, limit, 512, |_| 0), 300);
        assert_eq!(max_tokens_within(&config, file, limit, 200, |_| 0), 200);
        assert_eq!(max_tokens_within(&config, file, estimate_load_bytes(file), 512, |_| 0), 0);
    }

    #[test]
    fn the_page_limits_hold_for_the_default_model() {
        let (config, file) = (smollm2(), SMOLLM2_FILE);
        let fits = |method: &str| {
            let method = methods::by_name(method).unwrap();
            let params = MethodParams::default();
            max_tokens_within(&config, file, USABLE_WASM_MEMORY, 512, |n| method_batch_rows(method, &params, n))
        };
        // Saliency reaches the page's 512 tokens; integrated gradients keeps a second graph and does not.
        assert_eq!(fits("saliency"), 512);
        let ig = fits("integrated_gradients");
        assert!((200..512).contains(&ig), "{ig}");
    }

    #[test]
    fn a_file_larger_than_wasm_memory_never_fits() {
        assert!(estimate_load_bytes(5 << 30) > WASM32_MEMORY);
        assert_eq!(max_tokens_within(&smollm2(), 5 << 30, USABLE_WASM_MEMORY, 512, |_| 0), 0);
    }
}

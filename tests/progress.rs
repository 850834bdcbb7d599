//! The progress count (`runtime::progress`, a run context's sink): what a run's passes count adds up to what
//! `expected_work` and the methods' `work` said beforehand, for every method, a continuation, the
//! faithfulness check of each method's map (`faithfulness::work`) and texts of a few lengths, and
//! the listener hears a count that only grows and ends where the run did, block by block. On a
//! tiny random llama, so the whole file runs in a moment.

mod common;
use candle_core::DType;
use common::gguf_builder::{tiny_llama, TinyConfig};
use salient::engine::api::expected_work;
use salient::engine::attribution::faithfulness;
use salient::engine::attribution::methods::{by_name, Param, METHODS};
use salient::engine::cpu::decoder::CpuDecoder;
use salient::engine::cpu::gradient::value_and_gradient_in_segments;
use salient::engine::runtime::progress::{self, Progress, ProgressSink};
use salient::engine::runtime::ready::now;
use salient::engine::RunContext;
use salient::engine::{attribute, Baseline, Model, Problem, Request, TargetSpec};
use std::sync::{Arc, Mutex};

const CONFIG: TinyConfig = TinyConfig {
    layers: 2,
    width: 16,
    heads: 4,
    kv_heads: 2,
    hidden: 32,
    context_length: 1024,
    seed: 5,
};
/// From one token to a few hundred, where occlusion's inputs come in several calls and batches
/// that continue the text's keys and values.
const TEXTS: [&str; 4] =
    ["a", "the cat sat", "the cat sat at the hat, then the rat ran at the cat", LONG_TEXT];
const LONG_TEXT: &str = "the rat sat at the hat; the cat ran to the mat, then the hat sat on the rat. \
    at the end the cat and the rat sat at the mat, and the hat ran, then sat. the rat, the cat, the \
    hat: all sat at the mat at the end of the tale, then ran, then sat again at the hat of the cat.";

/// A run context whose progress sink keeps everything its listener hears.
fn listened() -> (RunContext, Arc<Mutex<Vec<Progress>>>) {
    let heard = Arc::new(Mutex::new(Vec::new()));
    let sink = {
        let heard = heard.clone();
        ProgressSink::new(move |progress| heard.lock().unwrap().push(progress))
    };
    (RunContext { progress: sink, ..RunContext::default() }, heard)
}

/// Runs `request` counted from its expected work; returns what the count expected and reached.
fn counted_run(model: &Model, request: &Request) -> (Progress, salient::engine::Attribution) {
    let (context, heard) = listened();
    let seq = model.tokenize_input(&request.text, None).unwrap().len();
    context.progress.begin(expected_work(model, seq, request).unwrap());
    let attribution = attribute(model, request, &context).unwrap();
    let end = context.progress.current();
    let heard = heard.lock().unwrap();
    assert_eq!(heard.first().map(|p| p.done), Some(0), "begin is heard");
    // The sampling methods correct the estimate once, when they have drawn their coalitions (so
    // once per problem: a continuation's rows would each add one); every other method keeps it.
    let revisions = heard.windows(2).filter(|w| w[0].expected != w[1].expected).count();
    let sampling = by_name(&request.method).unwrap().params().contains(&Param::Budget);
    assert!(heard.windows(2).all(|w| w[0].done <= w[1].done), "{heard:?}");
    assert!(revisions <= sampling as usize, "{revisions}: {heard:?}");
    assert_eq!(heard.last(), Some(&end), "the last report is the end");
    (end, attribution)
}

#[test]
fn every_method_does_the_work_it_expects() {
    let model = Model::load_with_dtype(tiny_llama(CONFIG).bytes, DType::F32).unwrap();
    for text in TEXTS {
        for method in METHODS {
            let mut request = Request::new(text, method.name());
            request.params.samples = 5;
            request.params.steps = 12;
            let (end, attribution) = counted_run(&model, &request);
            let seq = attribution.tokens.len();
            assert!(text != LONG_TEXT || seq > 150, "{seq} tokens");
            // Integrated gradients may stop before its step budget: by the gradients it did not take.
            let untaken =
                attribution.path_gradients.map_or(0, |taken| request.params.steps - taken);
            assert_eq!(
                end.done + progress::gradients(untaken, seq),
                end.expected,
                "{} on {text:?}",
                method.name()
            );
            assert!(end.done > 0);

            // The map's faithfulness check, on a problem of its own (no keys and values yet).
            for seed in [0, 7] {
                let context = RunContext::default();
                let problem =
                    now(Problem::new(&model, text, &request.target, None, &context)).unwrap();
                context.progress.begin(faithfulness::work(&attribution.scores, seed));
                now(faithfulness::measure(&problem, &attribution.scores, Baseline::Pad, seed))
                    .unwrap();
                let measured = context.progress.current();
                assert_eq!(
                    measured.done,
                    measured.expected,
                    "faithfulness of {} on {text:?}",
                    method.name()
                );
            }
        }
    }
}

#[test]
fn a_continuation_counts_every_row() {
    let model = Model::load_with_dtype(tiny_llama(CONFIG).bytes, DType::F32).unwrap();
    for method in ["saliency", "occlusion"] {
        let request =
            Request { continuation: Some(" the hat".into()), ..Request::new(TEXTS[1], method) };
        let (end, attribution) = counted_run(&model, &request);
        let rows = attribution.continuation.as_ref().map_or(0, |c| c.rows.len());
        assert!(rows > 1, "{rows} rows");
        assert_eq!(end.done, end.expected, "{method}");
    }
}

/// A gradient cut into segments is heard block by block in its forward pass and segment by
/// segment in its backward pass; the earlier segments' forward passes, run again for their
/// backward passes, are not counted, so every cut counts the same work.
#[test]
fn a_gradient_is_heard_block_by_block_and_counts_no_recomputation() {
    const LAYERS: usize = 5;
    let model = Model::load_with_dtype(
        tiny_llama(TinyConfig { layers: LAYERS, ..CONFIG }).bytes,
        DType::F32,
    )
    .unwrap();
    let problem =
        now(Problem::new(&model, TEXTS[2], &TargetSpec::top(), None, &RunContext::default()))
            .unwrap();
    let seq = problem.len();
    assert!(seq >= LAYERS, "{seq} tokens: every block's share is at least one unit");
    for (per_segment, segments) in [(5, 1), (2, 3), (1, 5)] {
        let (context, heard) = listened();
        context.progress.begin(progress::gradients(1, seq));
        value_and_gradient_in_segments(
            &CpuDecoder::of(&model, &context).unwrap(),
            &problem.input().unsqueeze(0).unwrap(),
            per_segment,
            |logits| problem.objective.score(logits),
        )
        .unwrap();
        let end = context.progress.current();
        assert_eq!(end.done, end.expected, "segments of {per_segment}");
        let done: Vec<u64> = heard.lock().unwrap().iter().map(|p| p.done).collect();
        // begin, then each block of the forward pass, then each segment of the backward pass.
        assert_eq!(done.len(), 1 + LAYERS + segments, "segments of {per_segment}: {done:?}");
        assert!(done.windows(2).all(|w| w[0] < w[1]), "segments of {per_segment}: {done:?}");
        assert_eq!(
            done[LAYERS],
            progress::forward(1, seq),
            "the forward pass ends at its units: {done:?}"
        );
    }
}

/// Two runs at once, each with its own context, count only their own work: the count is the
/// run's, not the process's.
#[test]
fn runs_at_once_count_apart() {
    let model = Model::load_with_dtype(tiny_llama(CONFIG).bytes, DType::F32).unwrap();
    let requests = [Request::new(TEXTS[1], "saliency"), Request::new(TEXTS[2], "occlusion")];
    let ends = std::thread::scope(|scope| {
        let runs: Vec<_> =
            requests.iter().map(|request| scope.spawn(|| counted_run(&model, request).0)).collect();
        runs.into_iter().map(|run| run.join().unwrap()).collect::<Vec<_>>()
    });
    for (end, request) in ends.iter().zip(&requests) {
        assert_eq!(end.done, end.expected, "{}", request.method);
    }
    assert_ne!(ends[0].expected, ends[1].expected, "the two runs expect different work");
}

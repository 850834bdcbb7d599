//! The worker side: fetches the model, holds it, and runs attributions, so the page never waits
//! on the maths. Messages are handled one at a time; a run posts its maps first and its
//! faithfulness numbers after. A busy worker reads no message: in the multi-threaded build the
//! page stops a run through the worker's stop token (shared memory), otherwise by terminating
//! this worker. Each run gets a context of its own: that token, and a progress sink that reports
//! the run's count on the worker's channel.

pub(crate) mod memory_guard;
pub(crate) mod model_loading;

use crate::engine::api::{self, explain_request};
use crate::engine::attribution::stats::spearman;
use crate::engine::attribution::{faithfulness, methods};
use crate::engine::runtime::context::{GraphBudget, StopToken};
use crate::engine::runtime::parallel;
use crate::engine::runtime::progress::{self, Progress, ProgressSink};
use crate::engine::runtime::ready::now;
use crate::engine::{EngineError, Model, Problem, Request, RunContext};
use crate::web::protocol::{Agreement, FromWorker, MethodScores, RunOutput, Timings, ToWorker};
use model_loading::{LoadedModel, ModelSource};
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{BroadcastChannel, DedicatedWorkerGlobalScope, MessageEvent};

thread_local! {
    /// Shared with the runs that await the GPU while the worker reads other messages.
    static MODEL: RefCell<Option<Rc<Model>>> = const { RefCell::new(None) };
    /// This thread's handle on the worker's channel, opened at its first report.
    static CHANNEL: RefCell<Option<BroadcastChannel>> = const { RefCell::new(None) };
}

/// The name of the channel the page listens on beside the worker's messages: the worker's own.
static CHANNEL_NAME: OnceLock<String> = OnceLock::new();
/// Every run's stop token: the page writes it, so it lives as long as the worker.
static STOP: OnceLock<StopToken> = OnceLock::new();

fn stop_token() -> &'static StopToken {
    STOP.get_or_init(StopToken::new)
}

/// The context of run `id` (measuring the faithfulness of `measuring`'s map, or computing the
/// run's maps): the worker's stop token, the page's graph budget, and a count reported on the
/// worker's channel.
fn run_context(id: u64, measuring: Option<String>) -> RunContext {
    let sent_percent = AtomicU64::new(u64::MAX);
    let report = move |progress: Progress| {
        let percent = progress.percent() as u64;
        if sent_percent.swap(percent, Ordering::Relaxed) != percent {
            report_progress(id, measuring.clone(), progress);
        }
    };
    RunContext {
        stop: stop_token().clone(),
        progress: ProgressSink::new(report),
        graph_budget: GraphBudget::default(),
    }
}

fn scope() -> DedicatedWorkerGlobalScope {
    js_sys::global().unchecked_into()
}

fn post(message: &FromWorker) {
    let value = serde_wasm_bindgen::to_value(message).expect("messages serialize");
    scope().post_message(&value).expect("the page is listening");
}

fn now_ms() -> f64 {
    js_sys::Date::now()
}

/// Serves the page. In the multi-threaded build `public/worker.js` has started the thread pool
/// already, so the first request finds it ready.
pub fn start() {
    let on_message = Closure::<dyn FnMut(MessageEvent)>::new(|event: MessageEvent| {
        match serde_wasm_bindgen::from_value::<ToWorker>(event.data()) {
            Ok(ToWorker::Load { url }) => {
                wasm_bindgen_futures::spawn_local(load(ModelSource::Url(url)))
            }
            Ok(ToWorker::LoadFile { file }) => {
                wasm_bindgen_futures::spawn_local(load(ModelSource::File(file)))
            }
            Ok(ToWorker::CancelLoad) => model_loading::cancel(),
            Ok(ToWorker::Run { id, request, compare }) => run_request(id, &request, &compare),
            Err(e) => post(&FromWorker::LoadFailed {
                message: format!("bad message from the page: {e}"),
                model_kept: MODEL.with(|m| m.borrow().is_some()),
            }),
        }
    });
    scope().set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    on_message.forget(); // lives as long as the worker
    let _ = CHANNEL_NAME.set(scope().name());
    crate::web::crash::install_worker_hook(scope().name());
    post(&FromWorker::Ready { stop_flag: shared_stop_flag() });
}

/// The worker's stop token as an `Int32Array` the page can write: only the multi-threaded build's
/// memory is shared (a `SharedArrayBuffer`, which crosses `postMessage` without being copied).
fn shared_stop_flag() -> JsValue {
    if !cfg!(target_feature = "atomics") {
        return JsValue::UNDEFINED;
    }
    let memory: js_sys::WebAssembly::Memory = wasm_bindgen::memory().unchecked_into();
    let address = stop_token().atomic() as *const _ as u32;
    js_sys::Int32Array::new_with_byte_offset_and_length(&memory.buffer(), address, 1).into()
}

/// Loads a model from `source`. The loaded model stays (and stays usable if this load fails)
/// until the new one has loaded, unless the two do not fit in memory together.
async fn load(source: ModelSource) {
    let started = now_ms();
    let loaded_bytes = MODEL.with(|m| m.borrow().as_ref().map(|m| m.file_bytes()));
    let free_loaded = || drop(MODEL.with(|m| m.borrow_mut().take()));
    let message = match model_loading::load(source, loaded_bytes, free_loaded, post).await {
        Ok(LoadedModel { model, summary }) => {
            MODEL.with(|m| *m.borrow_mut() = Some(Rc::new(model)));
            FromWorker::Loaded { model: summary, load_ms: now_ms() - started }
        }
        Err(message) => {
            FromWorker::LoadFailed { message, model_kept: MODEL.with(|m| m.borrow().is_some()) }
        }
    };
    post(&message);
}

/// Runs one request and posts its messages: `Done` with the maps (or `RunFailed`), then one
/// `Faithfulness` per map when asked. The faithfulness check reuses the run's `Problem`, so it
/// costs only its own forward passes.
fn run_request(id: u64, request: &Request, compare: &[String]) {
    MODEL.with(|model| {
        let model = model.borrow();
        let Some(model) = model.as_deref() else {
            return post(&FromWorker::RunFailed { id, message: "No model is loaded yet.".into() });
        };
        let context = run_context(id, None);
        if let Err(message) = memory_guard::check_run(model, request, compare, context.graph_budget)
        {
            return post(&FromWorker::RunFailed { id, message });
        }
        // The page stops runs by storing the newest run id it wants stopped: a stop for an older
        // run is cleared, one that already covers this run (cancelled before it got here) stays.
        let flag = stop_token().atomic();
        let asked = flag.load(Ordering::SeqCst);
        if u64::from(asked) < id {
            // Failing means the page has just stored a newer id: then the stop stands.
            let _ = flag.compare_exchange(asked, 0, Ordering::SeqCst, Ordering::SeqCst);
        }
        let started = now_ms();
        let computed = parallel::on_pool(|| {
            now(async {
                let tokens = model.tokenize_input(&request.text, request.max_tokens)?;
                let work = expected_work(model, tokens.len(), request, compare)?;
                within_budget(work, tokens.len())?;
                context.progress.begin(work);
                let problem =
                    Problem::from_tokens(model, tokens, &request.target, &context).await?;
                let forward_done = now_ms();
                let output = maps(&problem, request, compare).await?;
                Ok::<_, EngineError>((problem, forward_done, output))
            })
        });
        let (problem, forward_done, output) = match computed {
            Ok(computed) => computed,
            Err(e) => return post(&FromWorker::RunFailed { id, message: e.to_string() }),
        };
        let finished = now_ms();
        let timings = Timings {
            forward_ms: forward_done - started,
            attribute_ms: finished - forward_done,
            total_ms: finished - started,
            wasm_memory: wasm_memory_bytes(),
            threads: parallel::threads(),
            relaxed_simd: cfg!(target_feature = "relaxed-simd"),
        };
        // The run's own map first, then each compared map not measured yet.
        let mut to_measure: Vec<MethodScores> = Vec::new();
        if request.faithfulness {
            let main = MethodScores {
                method: output.attribution.method.clone(),
                signed: output.attribution.signed,
                scores: output.attribution.scores.clone(),
            };
            for map in std::iter::once(main).chain(output.compared.iter().cloned()) {
                if !to_measure.iter().any(|m| m.method == map.method) {
                    to_measure.push(map);
                }
            }
        }
        let measuring = to_measure.iter().map(|m| m.method.clone()).collect();
        post(&FromWorker::Done { id, output: Box::new(output), timings, measuring });
        let params = &request.params;
        for map in to_measure {
            let started = now_ms();
            // The problem keeps the run's context; the check's count is its own.
            let counted = run_context(id, Some(map.method.clone())).progress;
            let outcome = parallel::on_pool(|| {
                counted.begin(faithfulness::work(&map.scores, params.seed));
                now(faithfulness::measure(&problem, &map.scores, params.baseline, params.seed))
            })
            .map_err(|e| e.to_string());
            post(&FromWorker::Faithfulness {
                id,
                method: map.method,
                outcome,
                ms: now_ms() - started,
            });
        }
    })
}

/// The work [`maps`] expects on a text of `seq` tokens, its problem's forward pass included.
fn expected_work(
    model: &Model,
    seq: usize,
    request: &Request,
    compare: &[String],
) -> Result<u64, EngineError> {
    let mut work =
        api::expected_work(model, seq, &Request { faithfulness: false, ..request.clone() })?;
    for name in compare.iter().filter(|name| **name != request.method) {
        work += methods::by_name(name)?.work(seq, &request.params);
    }
    Ok(work)
}

/// The GPU spike's probe on the loaded model (`engine::gpu::probe`), for the tests:
/// `public/worker.js` exposes it as `salientGpuProbe`. Resolves to the probe's JSON.
#[wasm_bindgen]
pub async fn gpu_probe() -> Result<String, String> {
    let model = MODEL.with(|m| m.borrow().clone()).ok_or("no model is loaded")?;
    let mut probe = crate::engine::gpu::probe(&model).await.map_err(|e| e.to_string())?;
    if probe.adapter.name.is_empty() {
        probe.adapter.name = adapter_label().await.unwrap_or_default();
    }
    serde_json::to_string(&probe).map_err(|e| e.to_string())
}

/// The adapter as the browser describes it (`GPUAdapterInfo`): browsers leave the description
/// wgpu reads empty, but say the vendor and architecture ("google swiftshader").
async fn adapter_label() -> Option<String> {
    use js_sys::Reflect;
    let navigator = Reflect::get(&js_sys::global(), &"navigator".into()).ok()?;
    let gpu = Reflect::get(&navigator, &"gpu".into()).ok().filter(|g| g.is_object())?;
    let request: js_sys::Function =
        Reflect::get(&gpu, &"requestAdapter".into()).ok()?.dyn_into().ok()?;
    let promise: js_sys::Promise = request.call0(&gpu).ok()?.dyn_into().ok()?;
    let adapter =
        wasm_bindgen_futures::JsFuture::from(promise).await.ok().filter(|a| a.is_object())?;
    let info = Reflect::get(&adapter, &"info".into()).ok()?;
    let field = |name: &str| {
        Reflect::get(&info, &name.into()).ok().and_then(|v| v.as_string()).unwrap_or_default()
    };
    let label = [field("vendor"), field("architecture"), field("description")]
        .into_iter()
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    (!label.is_empty()).then_some(label)
}

/// The most a run from the page may compute, in forward passes over its text: more than any one
/// method with the page's largest settings (integrated gradients with 1,024 steps is about
/// 3,100), so only runs that also compare several costly methods are refused. A link could ask
/// for a run that takes hours; this bounds it by cost, not only by count.
const MAX_RUN_PASSES: u64 = 4096;

fn within_budget(work: u64, seq: usize) -> Result<(), EngineError> {
    let passes = work / progress::forward(1, seq).max(1);
    match passes <= MAX_RUN_PASSES {
        true => Ok(()),
        false => Err(EngineError::InvalidRequest(format!(
            "This run would compute about {passes} passes through the model, more than the {MAX_RUN_PASSES} a run here may: lower the steps or samples, or compare fewer methods."
        ))),
    }
}

/// Tells the page how far run `id` has come, on the worker's channel. Called by the run's progress
/// sink on the thread that computes.
fn report_progress(id: u64, measuring: Option<String>, progress: Progress) {
    let Some(name) = CHANNEL_NAME.get() else { return };
    let message =
        FromWorker::RunProgress { id, measuring, done: progress.done, expected: progress.expected };
    let value = serde_wasm_bindgen::to_value(&message).expect("messages serialize");
    CHANNEL.with(|channel| {
        let mut channel = channel.borrow_mut();
        if channel.is_none() {
            *channel = BroadcastChannel::new(name).ok();
        }
        if let Some(channel) = channel.as_ref() {
            let _ = channel.post_message(&value);
        }
    });
}

/// The maps of one run on `problem`: the request's own (faithfulness left for later), f(baseline)
/// for completeness, and the compared methods with their pairwise agreement.
async fn maps(
    problem: &Problem<'_>,
    request: &Request,
    compare: &[String],
) -> Result<RunOutput, EngineError> {
    let attribution =
        explain_request(problem, &Request { faithfulness: false, ..request.clone() }).await?;
    let baseline_value = match attribution.completeness_error {
        Some(_) => Some(problem.values(&[problem.baseline(request.params.baseline)?]).await?[0]),
        None => None,
    };
    let mut compared = Vec::with_capacity(compare.len());
    for name in compare {
        let method = methods::by_name(name)?;
        let scores = match name == &attribution.method {
            true => attribution.scores.clone(),
            false => method.attribute(problem, &request.params).await?.values,
        };
        compared.push(MethodScores {
            method: method.name().to_string(),
            signed: method.signed(),
            scores,
        });
    }
    let agreements = compared
        .iter()
        .enumerate()
        .flat_map(|(i, a)| compared[i + 1..].iter().map(move |b| (a, b)))
        .map(|(a, b)| Agreement {
            a: a.method.clone(),
            b: b.method.clone(),
            spearman: spearman(&a.scores, &b.scores),
        })
        .collect();
    Ok(RunOutput { attribution, baseline_value, compared, agreements })
}

fn wasm_memory_bytes() -> f64 {
    let memory: js_sys::WebAssembly::Memory = wasm_bindgen::memory().unchecked_into();
    memory.buffer().unchecked_into::<js_sys::ArrayBuffer>().byte_length() as f64
}

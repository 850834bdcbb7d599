//! The worker side: fetches the model, holds it, and runs attributions, so the page never waits
//! on the maths. Messages are handled one at a time; a run posts its maps first and its
//! faithfulness numbers after. A busy worker reads no message: in the multi-threaded build the
//! page stops a run through the engine's stop flag (shared memory), otherwise by terminating
//! this worker.

pub(crate) mod memory_guard;
pub(crate) mod model_loading;

use crate::engine::api::{self, explain_request};
use crate::engine::attribution::stats::spearman;
use crate::engine::attribution::{faithfulness, methods};
use crate::engine::runtime::parallel;
use crate::engine::runtime::progress::{self, Progress};
use crate::engine::{EngineError, Model, Problem, Request};
use crate::web::protocol::{Agreement, FromWorker, MethodScores, RunOutput, Timings, ToWorker};
use model_loading::{LoadedModel, ModelSource};
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::{Mutex, OnceLock};
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
/// What the engine's count is about: a run's id, the method whose map's faithfulness it measures
/// (`None`: the run's maps), and the whole percent last sent. Shared: the count is reported from
/// the computing thread.
static COUNTED: Mutex<Option<Counted>> = Mutex::new(None);

struct Counted {
    id: u64,
    measuring: Option<String>,
    sent_percent: Option<u64>,
}

fn count_for(counted: Option<(u64, Option<String>)>) {
    *COUNTED.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) =
        counted.map(|(id, measuring)| Counted { id, measuring, sent_percent: None });
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
    progress::listen(report_progress);
    post(&FromWorker::Ready { stop_flag: shared_stop_flag() });
}

/// The engine's stop flag as an `Int32Array` the page can write: only the multi-threaded build's
/// memory is shared (a `SharedArrayBuffer`, which crosses `postMessage` without being copied).
fn shared_stop_flag() -> JsValue {
    if !cfg!(target_feature = "atomics") {
        return JsValue::UNDEFINED;
    }
    let memory: js_sys::WebAssembly::Memory = wasm_bindgen::memory().unchecked_into();
    let address = parallel::stop_flag() as *const _ as u32;
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
        if let Err(message) = memory_guard::check_run(model, request, compare) {
            return post(&FromWorker::RunFailed { id, message });
        }
        // The page stops runs by storing the newest run id it wants stopped: a stop for an older
        // run is cleared, one that already covers this run (cancelled before it got here) stays.
        let flag = parallel::stop_flag();
        let asked = flag.load(Ordering::SeqCst);
        if u64::from(asked) < id {
            // Failing means the page has just stored a newer id: then the stop stands.
            let _ = flag.compare_exchange(asked, 0, Ordering::SeqCst, Ordering::SeqCst);
        }
        let started = now_ms();
        count_for(Some((id, None)));
        let computed = parallel::on_pool(|| {
            let tokens = model.tokenize_input(&request.text, request.max_tokens)?;
            let work = expected_work(model, tokens.len(), request, compare)?;
            within_budget(work, tokens.len())?;
            progress::begin(work);
            let problem = Problem::from_tokens(model, tokens, &request.target)?;
            let forward_done = now_ms();
            let output = maps(&problem, request, compare)?;
            Ok::<_, EngineError>((problem, forward_done, output))
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
            count_for(Some((id, Some(map.method.clone()))));
            let outcome = parallel::on_pool(|| {
                progress::begin(faithfulness::work(&map.scores, params.seed));
                faithfulness::measure(&problem, &map.scores, params.baseline, params.seed)
            })
            .map_err(|e| e.to_string());
            post(&FromWorker::Faithfulness {
                id,
                method: map.method,
                outcome,
                ms: now_ms() - started,
            });
        }
        count_for(None);
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

/// Tells the page how far the current run has come, on the worker's channel, when the whole
/// percent it shows changes. Called by the engine on the thread that computes, after each block.
fn report_progress(progress: Progress) {
    let mut counted = COUNTED.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let (Some(name), Some(counted)) = (CHANNEL_NAME.get(), counted.as_mut()) else { return };
    let percent = progress.percent() as u64;
    if counted.sent_percent.replace(percent) == Some(percent) {
        return;
    }
    let message = FromWorker::RunProgress {
        id: counted.id,
        measuring: counted.measuring.clone(),
        done: progress.done,
        expected: progress.expected,
    };
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
fn maps(
    problem: &Problem,
    request: &Request,
    compare: &[String],
) -> Result<RunOutput, EngineError> {
    let attribution =
        explain_request(problem, &Request { faithfulness: false, ..request.clone() })?;
    let baseline_value = match attribution.completeness_error {
        Some(_) => Some(problem.values(&[problem.baseline(request.params.baseline)?])?[0]),
        None => None,
    };
    let compared = compare
        .iter()
        .map(|name| {
            let method = methods::by_name(name)?;
            let scores = match name == &attribution.method {
                true => attribution.scores.clone(),
                false => method.attribute(problem, &request.params)?.values,
            };
            Ok(MethodScores { method: method.name().to_string(), signed: method.signed(), scores })
        })
        .collect::<Result<Vec<_>, EngineError>>()?;
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

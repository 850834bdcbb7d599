//! The worker side: fetches the model, holds it, and runs attributions, so the page never waits
//! on the maths. Messages are handled one at a time; a run posts its maps first and its
//! faithfulness numbers after. A worker computing on the CPU reads no message: in the
//! multi-threaded build the page stops a run through the worker's stop token (shared memory),
//! otherwise by terminating this worker. A worker computing on the GPU awaits the device and reads
//! messages meanwhile: the page stops its run with `ToWorker::Stop`. Each run gets a context of
//! its own: that token, and a progress sink that reports the run's count on the worker's channel.
//!
//! The GPU backend (single-threaded build only) is tried when `public/worker.js` says so: its
//! decoder is made after each model load, and a GPU failure (at that point or in any run) moves
//! this worker to the CPU for good, the run redone there and the reason shown.

pub(crate) mod memory_guard;
pub(crate) mod model_loading;

use crate::engine::api::{self, explain_request};
use crate::engine::attribution::components::components;
use crate::engine::attribution::faithfulness::Faithfulness;
use crate::engine::attribution::stats::spearman;
use crate::engine::attribution::{faithfulness, methods};
use crate::engine::evaluation::{evaluate, templates, Plan};
use crate::engine::runtime::context::{GraphBudget, StopToken};
use crate::engine::runtime::parallel;
use crate::engine::runtime::progress::{self, Progress, ProgressSink};
use crate::engine::runtime::ready::now;
use crate::engine::{Backend, BackendKind, EngineError, Model, Problem, Request, RunContext};
use crate::web::protocol::{
    Agreement, FromWorker, MethodScores, OnGpu, RunOutput, Timings, ToWorker,
};
use model_loading::{LoadedModel, ModelSource};
use std::cell::RefCell;
use std::future::Future;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{BroadcastChannel, DedicatedWorkerGlobalScope, MessageEvent};

thread_local! {
    /// Shared with the runs that await the GPU while the worker reads other messages.
    static MODEL: RefCell<Option<Rc<Model>>> = const { RefCell::new(None) };
    /// Where this worker computes, and why not on the GPU.
    static BACKEND: RefCell<WorkerBackend> = RefCell::new(WorkerBackend::default());
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

/// Whose work a run's count is: the faithfulness check of this method's map, or (`None`) the
/// run's maps. The check computes on the run's problem, so on its context.
type Measuring = Arc<Mutex<Option<String>>>;

/// The context of run `id`: the worker's stop token, the page's graph budget, and a count
/// reported on the worker's channel as `measuring` says.
fn run_context(id: u64) -> (RunContext, Measuring) {
    let measuring = Measuring::default();
    let counting = measuring.clone();
    let sent_percent = AtomicU64::new(u64::MAX);
    let report = move |progress: Progress| {
        let percent = progress.percent() as u64;
        if sent_percent.swap(percent, Ordering::Relaxed) != percent {
            let measuring = counting.lock().unwrap_or_else(|p| p.into_inner()).clone();
            report_progress(id, measuring, progress);
        }
    };
    let context = RunContext {
        stop: stop_token().clone(),
        progress: ProgressSink::new(report),
        graph_budget: GraphBudget::default(),
    };
    (context, measuring)
}

/// The backend this worker computes on.
#[derive(Default)]
struct WorkerBackend {
    /// `public/worker.js` asked for the GPU (auto or GPU chosen, and the browser has an adapter).
    wanted: bool,
    /// The loaded model's decoder on the GPU.
    #[cfg(gpu)]
    decoder: Option<Arc<crate::engine::gpu::GpuDecoder>>,
    /// The adapter, as the browser names it.
    #[cfg(gpu)]
    adapter: Option<String>,
    /// Why this worker computes on the CPU although the GPU was wanted.
    not_on_gpu: Option<String>,
    /// The last load's shader compilation, reported with the first run after it.
    shader_ms: Option<f64>,
}

impl WorkerBackend {
    fn backend(&self) -> Backend {
        #[cfg(gpu)]
        if let Some(decoder) = &self.decoder {
            return Backend::Gpu(decoder.clone());
        }
        Backend::Cpu
    }

    /// The GPU failed (`why`): compute on the CPU from now on.
    fn lost(&mut self, why: String) {
        #[cfg(gpu)]
        {
            self.decoder = None;
        }
        self.not_on_gpu = Some(why);
    }

    fn on_gpu(&self) -> Option<OnGpu> {
        #[cfg(gpu)]
        if self.decoder.is_some() {
            return Some(OnGpu { adapter: self.adapter.clone().unwrap_or_default() });
        }
        None
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

/// Serves the page, on the GPU when `gpu` (then `public/worker.js` has loaded the
/// single-threaded build), else on the CPU: `not_on_gpu` says why when the GPU was chosen but
/// the browser has none. In the multi-threaded build `public/worker.js` has started the thread
/// pool already, so the first request finds it ready.
pub fn start(gpu: bool, not_on_gpu: Option<String>) {
    BACKEND.with(|b| {
        let mut b = b.borrow_mut();
        b.wanted = gpu && cfg!(gpu);
        b.not_on_gpu = match (gpu, cfg!(gpu)) {
            (true, false) => Some("this build of the engine has no GPU backend".into()),
            _ => not_on_gpu,
        };
    });
    let on_message = Closure::<dyn FnMut(MessageEvent)>::new(|event: MessageEvent| {
        match serde_wasm_bindgen::from_value::<ToWorker>(event.data()) {
            Ok(ToWorker::Load { url }) => {
                wasm_bindgen_futures::spawn_local(load(ModelSource::Url(url)))
            }
            Ok(ToWorker::LoadFile { file }) => {
                wasm_bindgen_futures::spawn_local(load(ModelSource::File(file)))
            }
            Ok(ToWorker::CancelLoad) => model_loading::cancel(),
            Ok(ToWorker::Run { id, request, compare }) => run_request(id, request, compare),
            Ok(ToWorker::Stop { through }) => stop_through(through),
            Ok(ToWorker::Evaluate { id, plan }) => evaluate_request(id, plan),
            Ok(ToWorker::Components { id, request }) => components_request(id, request),
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

/// Stops the runs up to id `through`, as the multi-threaded build's page does through shared
/// memory: read between the GPU's passes.
fn stop_through(through: u64) {
    let through = u32::try_from(through).unwrap_or(u32::MAX);
    stop_token().atomic().fetch_max(through, Ordering::SeqCst);
}

/// Loads a model from `source`. The loaded model stays (and stays usable if this load fails)
/// until the new one has loaded, unless the two do not fit in memory together. On the GPU, the
/// model's decoder follows (its weights uploaded, its kernels compiled).
async fn load(source: ModelSource) {
    let started = now_ms();
    let loaded_bytes = MODEL.with(|m| m.borrow().as_ref().map(|m| m.file_bytes()));
    let free_loaded = || drop(MODEL.with(|m| m.borrow_mut().take()));
    let message = match model_loading::load(source, loaded_bytes, free_loaded, post).await {
        Ok(LoadedModel { model, summary }) => {
            let model = Rc::new(model);
            MODEL.with(|m| *m.borrow_mut() = Some(model.clone()));
            #[cfg(gpu)]
            to_gpu(&model).await;
            let gpu = BACKEND.with(|b| b.borrow().on_gpu());
            FromWorker::Loaded { model: summary, load_ms: now_ms() - started, gpu }
        }
        Err(message) => {
            FromWorker::LoadFailed { message, model_kept: MODEL.with(|m| m.borrow().is_some()) }
        }
    };
    post(&message);
}

/// The decoder of `model` on the GPU, its kernels compiled, when this worker wants the GPU; a
/// failure leaves the worker on the CPU with the reason.
#[cfg(gpu)]
async fn to_gpu(model: &Model) {
    if !BACKEND.with(|b| b.borrow().wanted) {
        return;
    }
    BACKEND.with(|b| b.borrow_mut().decoder = None); // the last model's, if any
    let started = now_ms();
    let made = async {
        let decoder = crate::engine::gpu::GpuDecoder::new(&model.architecture).await?;
        decoder.warm_up(&RunContext::default()).await?;
        Ok::<_, EngineError>(decoder)
    };
    let outcome = made.await;
    let label = match &outcome {
        Ok(decoder) if decoder.adapter().name.is_empty() => adapter_label().await,
        Ok(decoder) => Some(decoder.adapter().name.clone()),
        Err(_) => None,
    };
    BACKEND.with(|b| {
        let mut b = b.borrow_mut();
        match outcome {
            Ok(decoder) => {
                b.decoder = Some(Arc::new(decoder));
                b.adapter = Some(label.unwrap_or_else(|| "WebGPU".into()));
                b.not_on_gpu = None;
                b.shader_ms = Some(now_ms() - started);
            }
            Err(e) => b.lost(e.to_string()),
        }
    });
}

/// Runs `work` on `backend`: CPU work on the thread pool, this worker blocked till it ends; GPU
/// work awaiting the device, this worker reading messages (a stop) meanwhile.
async fn on_backend<T: Send, F: Future<Output = Result<T, EngineError>>>(
    backend: &Backend,
    work: impl FnOnce() -> F + Send,
) -> Result<T, EngineError> {
    match backend {
        Backend::Cpu => parallel::on_pool(|| now(work())),
        #[cfg(gpu)]
        Backend::Gpu(_) => work().await,
    }
}

/// `attempt` on this worker's backend; when the GPU fails, again on the CPU, where this worker
/// computes from then on. Returns the outcome and the GPU's failure, if any.
async fn with_fallback<T, F: Future<Output = Result<T, EngineError>>>(
    attempt: impl Fn(Backend) -> F,
) -> (Result<T, EngineError>, Option<String>) {
    let backend = BACKEND.with(|b| b.borrow().backend());
    match attempt(backend).await {
        Err(EngineError::Gpu(why)) => {
            BACKEND.with(|b| b.borrow_mut().lost(why.clone()));
            (attempt(Backend::Cpu).await, Some(why))
        }
        outcome => (outcome, None),
    }
}

/// Runs one request and posts its messages: `Done` with the maps (or `RunFailed`), then one
/// `Faithfulness` per map when asked. The faithfulness check reuses the run's `Problem`, so it
/// costs only its own forward passes.
fn run_request(id: u64, request: Request, compare: Vec<String>) {
    let Some(model) = MODEL.with(|m| m.borrow().clone()) else {
        return post(&FromWorker::RunFailed { id, message: "No model is loaded yet.".into() });
    };
    let (context, measuring) = run_context(id);
    if let Err(message) = memory_guard::check_run(&model, &request, &compare, context.graph_budget)
    {
        return post(&FromWorker::RunFailed { id, message });
    }
    // The page stops runs by storing the newest run id it wants stopped.
    clear_older_stop(id);
    wasm_bindgen_futures::spawn_local(async move {
        run(id, &model, &request, &compare, (&context, &measuring)).await;
    });
}

async fn run(
    id: u64,
    model: &Model,
    request: &Request,
    compare: &[String],
    (context, measuring): (&RunContext, &Measuring),
) {
    let started = now_ms();
    let compute = |backend: Backend| async move {
        let on = backend.clone();
        on_backend(&on, || async {
            let tokens = model.tokenize_input(&request.text, request.max_tokens)?;
            let work = expected_work(model, tokens.len(), request, compare)?;
            within_budget(work, tokens.len())?;
            context.progress.begin(work);
            let problem = Problem::on(backend, model, tokens, &request.target, context).await?;
            let forward_done = now_ms();
            let output = maps(&problem, request, compare).await?;
            Ok::<_, EngineError>((problem, forward_done, output, work))
        })
        .await
    };
    let (computed, fallback) = with_fallback(compute).await;
    let (problem, forward_done, output, work) = match computed {
        Ok(computed) => computed,
        Err(e) => return post(&FromWorker::RunFailed { id, message: e.to_string() }),
    };
    let finished = now_ms();
    let (on_gpu, shader_ms) = BACKEND.with(|b| {
        let mut b = b.borrow_mut();
        (b.on_gpu(), b.shader_ms.take())
    });
    let not_on_gpu = match on_gpu {
        None => BACKEND.with(|b| b.borrow().not_on_gpu.clone()),
        Some(_) => None,
    };
    let timings = Timings {
        forward_ms: forward_done - started,
        attribute_ms: finished - forward_done,
        total_ms: finished - started,
        wasm_memory: wasm_memory_bytes(),
        threads: parallel::threads(),
        relaxed_simd: cfg!(target_feature = "relaxed-simd"),
        backend: output.attribution.backend,
        adapter: on_gpu.map(|gpu| gpu.adapter),
        not_on_gpu,
        fell_back: fallback.is_some(),
        shader_ms,
        work,
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
    let methods = to_measure.iter().map(|m| m.method.clone()).collect();
    post(&FromWorker::Done { id, output: Box::new(output), timings, measuring: methods });
    for map in to_measure {
        let started = now_ms();
        *measuring.lock().unwrap_or_else(|p| p.into_inner()) = Some(map.method.clone());
        let outcome = measure(model, &problem, request, &map).await;
        post(&FromWorker::Faithfulness {
            id,
            method: map.method,
            outcome: outcome.map_err(|e| e.to_string()),
            ms: now_ms() - started,
        });
    }
}

/// Clears a stop the page stored for an older run than `id`; one that already covers `id`
/// (cancelled before it got here) stays.
fn clear_older_stop(id: u64) {
    let flag = stop_token().atomic();
    let asked = flag.load(Ordering::SeqCst);
    if u64::from(asked) < id {
        // Failing means the page has just stored a newer id: then the stop stands.
        let _ = flag.compare_exchange(asked, 0, Ordering::SeqCst, Ordering::SeqCst);
    }
}

/// Runs the report card of `plan` on the built-in suite and posts `Evaluated`.
fn evaluate_request(id: u64, plan: Plan) {
    let started = now_ms();
    let Some(model) = MODEL.with(|m| m.borrow().clone()) else {
        let outcome = Err("No model is loaded yet.".into());
        return post(&FromWorker::Evaluated { id, outcome, ms: 0.0, backend: BackendKind::Cpu });
    };
    let (context, _) = run_context(id);
    clear_older_stop(id);
    wasm_bindgen_futures::spawn_local(async move {
        let suite = templates::builtin();
        let compute = |backend: Backend| {
            let on = backend.clone();
            let (model, suite, plan, context) = (&*model, &suite, &plan, &context);
            async move {
                let evaluated = on_backend(&on, || evaluate(backend, model, suite, plan, context));
                evaluated.await.map(|report| (report, on.kind()))
            }
        };
        let (outcome, _) = with_fallback(compute).await;
        let backend = outcome.as_ref().map_or(BackendKind::Cpu, |(_, kind)| *kind);
        post(&FromWorker::Evaluated {
            id,
            outcome: outcome.map(|(report, _)| Box::new(report)).map_err(|e| e.to_string()),
            ms: now_ms() - started,
            backend,
        });
    });
}

/// The component attribution of `request`'s text and target, on the CPU; posts `ComponentsDone`.
fn components_request(id: u64, request: Request) {
    let started = now_ms();
    let Some(model) = MODEL.with(|m| m.borrow().clone()) else {
        let outcome = Err("No model is loaded yet.".into());
        return post(&FromWorker::ComponentsDone { id, outcome, ms: 0.0 });
    };
    let (context, _) = run_context(id);
    clear_older_stop(id);
    wasm_bindgen_futures::spawn_local(async move {
        let (text, spec) = (&request.text, &request.target);
        let outcome = match Problem::new(&model, text, spec, request.max_tokens, &context).await {
            Ok(problem) => components(&problem),
            Err(e) => Err(e),
        };
        post(&FromWorker::ComponentsDone {
            id,
            outcome: outcome.map(Box::new).map_err(|e| e.to_string()),
            ms: now_ms() - started,
        });
    });
}

/// The faithfulness of `map` on the run's `problem`; when the GPU fails, on the same problem
/// computed on the CPU.
async fn measure(
    model: &Model,
    problem: &Problem<'_>,
    request: &Request,
    map: &MethodScores,
) -> Result<Faithfulness, EngineError> {
    let backend = problem.backend();
    match on_backend(&backend, || measured(problem, map, request)).await {
        Err(EngineError::Gpu(why)) => {
            BACKEND.with(|b| b.borrow_mut().lost(why));
            on_backend(&Backend::Cpu, || async {
                let tokens = problem.tokens.clone();
                let context = problem.context();
                let on_cpu = Problem::on(Backend::Cpu, model, tokens, &request.target, context);
                measured(&on_cpu.await?, map, request).await
            })
            .await
        }
        outcome => outcome,
    }
}

/// The faithfulness of `map` on `problem`, counted on the problem's context.
async fn measured(
    problem: &Problem<'_>,
    map: &MethodScores,
    request: &Request,
) -> Result<Faithfulness, EngineError> {
    let params = &request.params;
    problem.context().progress.begin(faithfulness::work(&map.scores, params.seed));
    faithfulness::measure(problem, &map.scores, params.baseline, params.seed).await
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

/// Destroys the GPU device, as a lost one is: for the tests of the fallback to the CPU
/// (`public/worker.js` exposes it as `salientTestLoseGpu`). False when this worker is not on the
/// GPU.
#[cfg(gpu)]
#[wasm_bindgen]
pub fn test_lose_gpu() -> bool {
    BACKEND.with(|b| b.borrow().decoder.as_ref().map(|d| d.lose_device()).is_some())
}

/// The GPU spike's probe on the loaded model (`engine::gpu::probe`), for the tests:
/// `public/worker.js` exposes it as `salientGpuProbe`. Resolves to the probe's JSON.
#[cfg(gpu)]
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
#[cfg(gpu)]
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

//! Messages between the page and its worker (sent with serde-wasm-bindgen over postMessage).

use crate::engine::attribution::components::Components;
use crate::engine::attribution::faithfulness::Faithfulness;
use crate::engine::evaluation::{Plan, Report};
use crate::engine::model::arch::DecoderConfig;
use crate::engine::{BackendKind, Request};
pub use crate::state::result::{Agreement, MethodScores, RunOutput};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
pub enum ToWorker {
    /// Fetch a GGUF file (from the model cache when it holds `url`) and load it. The loaded model
    /// stays until the new one has loaded, unless both do not fit in memory.
    Load { url: String },
    /// Load a file the user picked or dropped. The `File` handle crosses, not its bytes: the
    /// worker streams them straight into its memory, so the page never holds a copy.
    LoadFile {
        #[serde(with = "serde_wasm_bindgen::preserve")]
        file: web_sys::File,
    },
    /// Stop the load in progress; a model still loaded stays.
    CancelLoad,
    /// Explain `request`, and run each method of `compare` on the same problem. When the request
    /// asks for faithfulness, it is measured after `Done`, one `Faithfulness` message per map.
    Run { id: u64, request: Request, compare: Vec<String> },
    /// Stop every run up to id `through`: for a worker on the GPU, which reads messages while
    /// it awaits the device (a worker on the CPU is stopped through its shared stop flag, or
    /// terminated).
    Stop { through: u64 },
    /// Evaluate the methods of `plan` on the built-in ground-truth suite: run `id` like any other
    /// (stopped, superseded, counted the same way), answered by `Evaluated`.
    Evaluate { id: u64, plan: Plan },
    /// Component attribution of `request`'s text and target on the CPU: run `id` like any other,
    /// answered by `ComponentsDone`.
    Components { id: u64, request: Request },
}

#[derive(Clone, Serialize, Deserialize)]
pub enum FromWorker {
    /// The worker's wasm is up and listening. `stop_flag`: in the multi-threaded build, an
    /// `Int32Array` over the engine's stop flag in the worker's shared memory (the page stops the
    /// runs up to an id by storing that id there, see `WorkerBridge::stop`); `undefined` in the
    /// single-threaded build, whose memory the page cannot reach.
    Ready {
        #[serde(with = "serde_wasm_bindgen::preserve")]
        stop_flag: wasm_bindgen::JsValue,
    },
    /// A load started reading `name` from `from`, `total` bytes when known. `Progress` follows.
    Reading {
        name: String,
        from: LoadedFrom,
        total: Option<f64>,
    },
    Progress {
        loaded: f64,
        total: Option<f64>,
    },
    /// `gpu`: the model is on the GPU too, and runs compute there.
    Loaded {
        model: ModelSummary,
        load_ms: f64,
        gpu: Option<OnGpu>,
    },
    /// `model_kept`: the model loaded before is still loaded and usable.
    LoadFailed {
        message: String,
        model_kept: bool,
    },
    /// The maps of run `id`. `Faithfulness` messages follow for each method in `measuring`
    /// (the run's own method first); the worker is free after the last one.
    Done {
        id: u64,
        output: Box<RunOutput>,
        timings: Timings,
        measuring: Vec<String>,
    },
    /// How far run `id` has come (`engine::progress` units), after each of its passes: its maps,
    /// or (`measuring`) the faithfulness check of one method's map. Posted on the worker's
    /// channel (see `WorkerBridge::spawn`): the thread that computes may be one of the pool's,
    /// which cannot post to the page.
    RunProgress {
        id: u64,
        measuring: Option<String>,
        done: u64,
        expected: u64,
    },
    Faithfulness {
        id: u64,
        method: String,
        outcome: Result<Faithfulness, String>,
        ms: f64,
    },
    RunFailed {
        id: u64,
        message: String,
    },
    /// The report card of run `id`, how long it took, and where it computed.
    Evaluated {
        id: u64,
        outcome: Result<Box<Report>, String>,
        ms: f64,
        backend: BackendKind,
    },
    ComponentsDone {
        id: u64,
        outcome: Result<Box<Components>, String>,
        ms: f64,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelSummary {
    pub name: String,
    pub bytes: usize,
    pub config: DecoderConfig,
    /// Of the file's bytes, in hex.
    pub sha256: String,
    /// Where it was fetched from; `None` for a local file.
    pub url: Option<String>,
    pub from: LoadedFrom,
    /// Why a downloaded model was not stored in the model cache.
    pub not_cached: Option<String>,
    /// The longest text (up to the page's limit) whose saliency run fits in the worker's memory.
    pub fitting_tokens: usize,
}

/// The GPU a worker computes on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OnGpu {
    /// As the browser names it ("google swiftshader").
    pub adapter: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LoadedFrom {
    Network,
    Cache,
    LocalFile,
}

impl LoadedFrom {
    pub fn name(self) -> &'static str {
        match self {
            LoadedFrom::Network => "network",
            LoadedFrom::Cache => "cache",
            LoadedFrom::LocalFile => "file",
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    /// Tokenize, embed, forward pass.
    pub forward_ms: f64,
    /// The methods' own work (the main map, the continuation and compared methods).
    pub attribute_ms: f64,
    pub total_ms: f64,
    /// Size of the worker's wasm memory after the run.
    pub wasm_memory: f64,
    /// Threads the engine computed on (more than one in the multi-threaded build).
    pub threads: usize,
    /// The build with relaxed SIMD (fused multiply-add in the matrix kernel) computed the run.
    pub relaxed_simd: bool,
    /// Where the run computed.
    pub backend: BackendKind,
    /// The GPU's adapter, when on the GPU.
    pub adapter: Option<String>,
    /// Why the run computed on the CPU although the GPU was wanted (no adapter, a failure).
    pub not_on_gpu: Option<String>,
    /// The GPU failed during this run, which was then computed again on the CPU.
    pub fell_back: bool,
    /// The first run after a load on the GPU: how long the kernels took to compile then.
    pub shader_ms: Option<f64>,
    /// The run's expected work (`engine::progress` units): its pace, for estimates of others.
    #[serde(default)]
    pub work: u64,
}

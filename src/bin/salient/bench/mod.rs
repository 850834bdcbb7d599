//! `salient bench`: load, forward and attribution times on texts of exact token counts, the
//! process's peak memory, the machine's f32 matmul peak, and how integrated gradients' path
//! integral converges with its number of steps. Figures only, no pass/fail; `scripts/bench.sh`
//! runs one configuration per process (so `VmHWM` is that configuration's peak) and writes
//! `BENCHMARKS.md` from the JSON lines printed here.
//!
//! Every line on stdout is one JSON object with a `kind`:
//! - `text`: a text of N tokens (`--texts-only`), for the page benchmark to use the same inputs;
//! - `run`: one (tokens, method) configuration: each run's times, medians, CPU time, peak RSS and
//!   the estimated FLOPs of one run;
//! - `matmul`: an N×N×N f32 candle matmul, the machine's practical peak;
//! - `convergence`: integrated gradients' completeness error against steps on one prompt, for the
//!   engine's adaptive rule and for fixed rules (`convergence.rs`).

mod convergence;
use crate::{positive, BackendChoice, Weights};
use candle_core::{DType, Device, Tensor};
use clap::builder::PossibleValuesParser;
use clap::Args;
use salient::engine::attribution::methods;
use salient::engine::gpu::{Gpu, GpuDecoder};
use salient::engine::runtime::progress::ProgressSink;
use salient::engine::{explain, Backend, MethodParams, Model, Problem, TargetSpec};
use std::io::Write;
use std::time::Instant;

/// Plain prose, long enough to cut texts of up to 512 tokens from.
const PROSE: &str = "The river town woke slowly that morning. Fishermen pulled their boats onto the gravel, \
counting the night's catch while gulls argued over the scraps. In the bakery on the corner, the first loaves \
came out of the oven at six, and the smell drifted down the main street past the shuttered post office and the \
old stone church. Nobody remembered exactly when the bridge had been built, but everyone agreed it had survived \
three floods and one very determined lorry driver. The mayor, a patient woman who kept bees behind the town hall, \
liked to say that the bridge was the only thing in town older than her arguments with the council. Children \
crossed it on their way to school, dropping sticks on one side and racing to the other to see whose stick came \
out first. In summer, tourists came for the walking trails and the cheap cider; in winter, the town belonged to \
the people who lived there, and to the fog that settled in the valley for days at a time. The library opened on \
Tuesdays and Fridays, and its single librarian had read every book on its shelves at least twice. She kept a list \
of the books people asked for and could not find, and once a year she took the train to the city to buy as many \
of them as the budget allowed. When the railway company threatened to close the station, the whole town wrote \
letters, and for once the letters worked. The station stayed open, the trains kept running twice a day, and the \
stationmaster planted roses along the platform to celebrate. Years later, visitors still asked about the roses, \
and the stationmaster, by then retired, would tell the story to anyone who would listen, adding a new detail \
each time, until the tale of the letters had become something close to a legend in the valley and beyond it.";

/// The prompts of the convergence study: short (its cost is steps × tokens; 5 tokens each), each
/// with a clear next token (" Paris", " cold", " Celsius").
const CONVERGENCE_PROMPTS: [&str; 3] =
    ["The capital of France is", "The opposite of hot is", "Water freezes at zero degrees"];

/// Not a method: `Problem::new` alone (tokenize, embed, forward with its graph).
pub const FORWARD: &str = "forward";

#[derive(Args)]
pub struct BenchArgs {
    /// The GGUF model file (not needed with --matmul or --gpu-matmul).
    #[arg(long, value_name = "PATH.gguf", required_unless_present_any = ["matmul", "gpu_matmul"])]
    pub model: Option<String>,
    /// Text lengths to time, in tokens.
    #[arg(long, value_name = "N,N,..", value_delimiter = ',', default_value = "64",
          value_parser = positive)]
    pub tokens: Vec<usize>,
    /// Timed runs per configuration.
    #[arg(long, value_name = "R", default_value_t = 5, value_parser = positive)]
    pub runs: usize,
    /// Model loads to time (by default --runs); each re-reads the file, so only one copy is alive.
    #[arg(long, value_name = "R", value_parser = positive)]
    pub load_runs: Option<usize>,
    /// Methods to time, or `forward` for the forward pass alone.
    #[arg(long = "methods", alias = "method", value_name = "NAME,..", value_delimiter = ',',
          default_value = "saliency", value_parser = PossibleValuesParser::new(
              std::iter::once(FORWARD).chain(methods::METHODS.iter().map(|m| m.name()))))]
    pub methods: Vec<String>,
    /// Integrated gradients' steps.
    #[arg(long, value_name = "N", default_value_t = MethodParams::default().steps,
          value_parser = positive)]
    pub steps: usize,
    /// The sampling methods' (kernel_shap, lime, shapley_sampling) coalition budget.
    #[arg(long, value_name = "N", default_value_t = MethodParams::default().budget,
          value_parser = positive)]
    pub budget: usize,
    /// Copied to the output, e.g. `1` or `all`: how the caller set the thread count.
    #[arg(long, value_name = "L")]
    pub threads_label: Option<String>,
    /// How to keep the model's weights: by default decoded for the CPU, encoded for the GPU.
    #[arg(long, value_enum)]
    pub weights: Option<Weights>,
    /// Where the passes compute.
    #[arg(long, value_enum, default_value = "cpu")]
    pub backend: BackendChoice,
    /// Time an N×N×N f32 matmul instead, the machine's practical peak (no model needed).
    #[arg(long, value_name = "N", value_parser = positive)]
    pub matmul: Option<usize>,
    /// Time the GPU's N×N×N f32 matmul instead (N a multiple of 64), the adapter's practical peak
    /// with a dedicated tiled kernel (no model needed).
    #[arg(long, value_name = "N", value_parser = positive)]
    pub gpu_matmul: Option<usize>,
    /// Integrated gradients' completeness error at these step counts on three prompts, for the
    /// engine's adaptive rule and for Gauss–Legendre, midpoint and trapezoid.
    #[arg(long, value_name = "N,N,..", value_delimiter = ',', conflicts_with = "texts_only")]
    pub convergence: Option<Vec<usize>>,
    /// Only print the texts of --tokens tokens (and each method's estimated FLOPs on them).
    #[arg(long)]
    pub texts_only: bool,
}

/// A text of exactly `n` tokens cut from `PROSE` (repeated as needed), or the nearest below.
pub fn text_of_tokens(model: &Model, n: usize) -> Result<String, String> {
    let mut source = PROSE.to_string();
    while model.tokenizer.encode(&source).map_err(|e| e.to_string())?.len() < n {
        source = format!("{source} {PROSE}");
    }
    let tokens = model.tokenizer.tokenize(&source).map_err(|e| e.to_string())?;
    // Cut at token boundaries; re-tokenizing a prefix can merge differently at the edge, so back off.
    let mut keep = n;
    loop {
        let bytes: usize = tokens[..keep].iter().map(|t| t.byte_len).sum();
        let text = String::from_utf8_lossy(&source.as_bytes()[..bytes]).into_owned();
        if model.tokenizer.encode(&text).map_err(|e| e.to_string())?.len() <= n {
            return Ok(text);
        }
        keep -= 1;
    }
}

pub(crate) fn median(xs: &[f64]) -> Option<f64> {
    let mut xs = xs.to_vec();
    xs.sort_by(f64::total_cmp);
    let mid = xs.len() / 2;
    match xs.len() {
        0 => None,
        n if n % 2 == 1 => Some(xs[mid]),
        _ => Some((xs[mid - 1] + xs[mid]) / 2.0),
    }
}

pub(crate) fn ms_since(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

/// Peak resident memory of this process so far (Linux `VmHWM`), in bytes.
fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse::<u64>().ok().map(|kb| kb * 1024)
}

/// CPU time (user + system, all threads) of this process so far, in ms (Linux; USER_HZ = 100).
fn cpu_ms() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let fields: Vec<&str> = stat[stat.rfind(')')? + 2..].split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks * 10.0)
}

/// OS threads of this process now (the main thread plus any pool threads started so far).
fn os_threads() -> Option<usize> {
    Some(std::fs::read_dir("/proc/self/task").ok()?.count())
}

/// How many threads the engine and candle use (`main::configure_threads` set them).
pub(crate) fn threads_json(label: &Option<String>) -> serde_json::Value {
    serde_json::json!({
        // The engine's pool: each projection's weight rows are split this many ways.
        "engine": salient::engine::runtime::parallel::threads(),
        // candle-core 0.11.1 `utils::get_num_threads` (RAYON_NUM_THREADS): candle's own matmuls
        // (attention's, and `--matmul`) split their work this many ways.
        "candle_matmul": candle_core::utils::get_num_threads(),
        "candle_elementwise_env": std::env::var("CANDLE_NUM_THREADS").ok(),
        "rayon_num_threads_env": std::env::var("RAYON_NUM_THREADS").ok(),
        "available_parallelism": std::thread::available_parallelism().map(|n| n.get()).ok(),
        "label": label,
    })
}

pub(crate) fn emit(line: serde_json::Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

pub fn run(args: &BenchArgs) -> Result<(), String> {
    if let Some(n) = args.matmul {
        return matmul(n, args);
    }
    if let Some(n) = args.gpu_matmul {
        return gpu_matmul(n, args);
    }
    let weights = args.weights.unwrap_or(match args.backend {
        BackendChoice::Cpu => Weights::Decoded,
        BackendChoice::Gpu => Weights::Encoded,
    });
    let path = args.model.as_deref().ok_or("--model is required")?;
    let read = || std::fs::read(path).map_err(|e| format!("cannot read {path}: {e}"));

    // Loads: each run re-reads the file (untimed) after the previous model is dropped, so the peak
    // memory is that of one loaded model, as in the page.
    let mut load_ms = Vec::new();
    let mut model: Option<Model> = None;
    for _ in 0..args.load_runs.unwrap_or(args.runs).max(1) {
        drop(model.take());
        let bytes = read()?;
        let t = Instant::now();
        model = Some(super::load_model(bytes, weights).map_err(|e| e.to_string())?);
        load_ms.push(ms_since(t));
    }
    let model = model.expect("at least one load");
    let flops = FlopModel::of(path, &model)?;

    if args.texts_only {
        for &n in &args.tokens {
            let text = text_of_tokens(&model, n)?;
            let tokens = model.tokenizer.encode(&text).map_err(|e| e.to_string())?.len();
            // The estimated FLOPs of one request per method, for the page benchmark's estimates.
            let per_method: serde_json::Map<String, serde_json::Value> = std::iter::once(FORWARD)
                .chain(methods::METHODS.iter().map(|m| m.name()))
                .filter_map(|m| Some((m.to_string(), flops.run(m, tokens, args.steps)?.into())))
                .collect();
            emit(serde_json::json!({
                "kind": "text", "tokens_requested": n, "tokens": tokens, "text": text, "steps": args.steps,
                "flops": per_method, "model_flops": flops.json(),
            }));
        }
        return Ok(());
    }
    if let Some(steps) = &args.convergence {
        return convergence::study(&model, &CONVERGENCE_PROMPTS, steps, args);
    }

    let params = MethodParams { steps: args.steps, budget: args.budget, ..MethodParams::default() };
    let context = super::native_context(ProgressSink::default());
    // On the GPU: the decoder made and its kernels compiled before any timed run.
    let (backend, adapter) = match args.backend {
        BackendChoice::Cpu => (Backend::Cpu, None),
        BackendChoice::Gpu => {
            let decoder = pollster::block_on(GpuDecoder::new(&model.architecture))
                .map_err(|e| e.to_string())?;
            pollster::block_on(decoder.warm_up(&context)).map_err(|e| e.to_string())?;
            let adapter = decoder.adapter().name.clone();
            (Backend::Gpu(decoder.into()), Some(adapter))
        }
    };
    for &n in &args.tokens {
        let text = text_of_tokens(&model, n)?;
        for method in &args.methods {
            let (mut forward, mut attribute, mut total, mut cpu) =
                (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            let (mut token_count, mut completeness, mut gradients) = (0, Vec::new(), Vec::new());
            let mut evaluations = Vec::new();
            for _ in 0..args.runs.max(1) {
                let c = cpu_ms();
                let t = Instant::now();
                let tokens = model.tokenize_input(&text, None).map_err(|e| e.to_string())?;
                let spec = TargetSpec::top();
                let problem = Problem::on(backend.clone(), &model, tokens, &spec, &context);
                let problem = pollster::block_on(problem).map_err(|e| e.to_string())?;
                forward.push(ms_since(t));
                token_count = problem.len();
                if method != FORWARD {
                    let t2 = Instant::now();
                    let result = pollster::block_on(explain(&problem, method, &params, 5))
                        .map_err(|e| e.to_string())?;
                    attribute.push(ms_since(t2));
                    completeness.extend(result.completeness_error);
                    gradients.extend(result.path_gradients.map(|g| g as f64));
                    evaluations.extend(result.evaluations.map(|e| e as f64));
                }
                drop(problem);
                total.push(ms_since(t));
                if let (Some(c0), Some(c1)) = (c, cpu_ms()) {
                    cpu.push(c1 - c0);
                }
            }
            // Integrated gradients may stop before its budget: count the gradients it took.
            let path_gradients = median(&gradients).map(|g| g.round() as usize);
            let run_flops = flops.run(method, token_count, path_gradients.unwrap_or(args.steps));
            let total_median = median(&total);
            emit(serde_json::json!({
                "kind": "run",
                "method": method,
                "tokens": token_count,
                "tokens_requested": n,
                "runs": total.len(),
                "steps": (method == "integrated_gradients").then_some(args.steps),
                // The sampling methods: the budget, and the coalitions (forward passes) they took.
                "budget": median(&evaluations).map(|_| args.budget),
                "evaluations": median(&evaluations),
                "threads": threads_json(&args.threads_label),
                "weights": weights.storage().name(),
                "backend": backend.name(),
                "adapter": adapter,
                "os_threads": os_threads(),
                "load_ms": median(&load_ms),
                "load_ms_runs": load_ms,
                "forward_ms": median(&forward),
                "forward_ms_runs": forward,
                "attribute_ms": median(&attribute),
                "attribute_ms_runs": attribute,
                "total_ms": total_median,
                "total_ms_runs": total,
                // CPU time over wall time: how many cores the runs kept busy on average.
                "cpu_ms_runs": cpu,
                "completeness_error": median(&completeness),
                "path_gradients": path_gradients,
                // The process's peak so far: one configuration per process makes it that configuration's.
                "peak_rss_bytes": peak_rss_bytes(),
                "flops": run_flops,
                "forward_flops": flops.forward(token_count),
                "gflops_per_s": run_flops.zip(total_median).map(|(f, ms)| f / (ms * 1e6)),
                "model_flops": flops.json(),
                "text": text,
            }));
        }
    }
    Ok(())
}

/// The FLOP estimate written in BENCHMARKS.md, from the GGUF's tensor shapes and the config.
struct FlopModel {
    /// Weights of the 2-D tensors inside the blocks (`blk.*`): the projections a token passes.
    block_params: f64,
    /// The output projection's weights (`output.weight`, or the tied token embedding).
    output_params: f64,
    width: f64,
    layers: f64,
}

impl FlopModel {
    /// Reads only the GGUF's header (metadata and tensor table) from `path`.
    fn of(path: &str, model: &Model) -> Result<Self, String> {
        let file = std::fs::File::open(path).map_err(|e| format!("cannot read {path}: {e}"))?;
        let content =
            candle_core::quantized::gguf_file::Content::read(&mut std::io::BufReader::new(file))
                .map_err(|e| format!("cannot read the GGUF's tensor table: {e}"))?;
        let elems =
            |name: &str| content.tensor_infos.get(name).map(|t| t.shape.elem_count() as f64);
        let block_params = content
            .tensor_infos
            .iter()
            .filter(|(name, t)| name.starts_with("blk.") && t.shape.rank() == 2)
            .map(|(_, t)| t.shape.elem_count() as f64)
            .sum();
        let output_params =
            elems("output.weight").or_else(|| elems("token_embd.weight")).unwrap_or(0.0);
        let config = model.config();
        Ok(Self {
            block_params,
            output_params,
            width: config.width as f64,
            layers: config.layers as f64,
        })
    }

    /// One forward pass on n tokens: 2·n·P (projections) + 4·n²·width·layers/2 (causal QKᵀ and
    /// AV) + 2·(output params) (logits at the last position only).
    fn forward(&self, n: usize) -> f64 {
        self.continuation(n, n)
    }

    /// The last `m` positions of a forward pass on n tokens, continuing the first n − m positions'
    /// keys and values: the projections of m positions, their causal attention to up to n keys
    /// (Σ of p + 1 over positions p from n − m to n − 1), and the logits.
    fn continuation(&self, m: usize, n: usize) -> f64 {
        let (m, n) = (m as f64, n as f64);
        let keys_seen = m * n - m * (m - 1.0) / 2.0;
        2.0 * m * self.block_params
            + 4.0 * keys_seen * self.width * self.layers
            + 2.0 * self.output_params
    }

    /// One request: the problem's forward pass plus the method's passes; a backward pass for the
    /// input gradient (no weight gradients) is counted as one forward.
    fn run(&self, method: &str, n: usize, steps: usize) -> Option<f64> {
        let f = self.forward(n);
        match method {
            FORWARD => Some(f),
            "saliency" | "grad_x_input" => Some(2.0 * f),
            // + the input's backward + (gradients − 1) × (forward + backward) + f(baseline)
            "integrated_gradients" => Some(f + 2.0 * steps as f64 * f),
            // + the text's keys and values + each occluded copy from its token on (the least the
            // engine computes; its batches recompute a few unchanged positions more)
            "occlusion" => Some(2.0 * f + (1..=n).map(|m| self.continuation(m, n)).sum::<f64>()),
            _ => None,
        }
    }

    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "block_params": self.block_params,
            "output_params": self.output_params,
            "width": self.width,
            "layers": self.layers,
        })
    }
}

/// The GPU's n×n by n×n f32 matmul (`Gpu::peak_products`), `runs` times after one warm-up
/// (compilation): each run submits enough products to last about a second.
fn gpu_matmul(n: usize, args: &BenchArgs) -> Result<(), String> {
    let err = |e: salient::engine::EngineError| e.to_string();
    let gpu = pollster::block_on(Gpu::new()).map_err(err)?;
    // Values in [-1, 1) from a fixed sequence: the peak does not depend on them.
    let values: Vec<f32> = (0..n * n).map(|i| ((i * 7919 % 2003) as f32 / 1001.5) - 1.0).collect();
    let operands = gpu.peak_operands(n, &values, &values).map_err(err)?;
    let t = Instant::now();
    pollster::block_on(gpu.peak_products(&operands, 1)).map_err(err)?;
    let first_ms = ms_since(t);
    let t = Instant::now();
    pollster::block_on(gpu.peak_products(&operands, 1)).map_err(err)?;
    let repeats = (1000.0 / ms_since(t).max(1e-3)).clamp(1.0, 256.0) as usize;
    let mut ms = Vec::new();
    for _ in 0..args.runs.max(1) {
        let t = Instant::now();
        pollster::block_on(gpu.peak_products(&operands, repeats)).map_err(err)?;
        ms.push(ms_since(t) / repeats as f64);
    }
    let flops = 2.0 * (n as f64).powi(3);
    let best = ms.iter().copied().fold(f64::INFINITY, f64::min);
    emit(serde_json::json!({
        "kind": "gpu-matmul",
        "adapter": gpu.adapter.name,
        "api": gpu.adapter.backend,
        "n": n,
        "runs": ms.len(),
        "products_per_run": repeats,
        "first_ms": first_ms,
        "ms": median(&ms),
        "ms_runs": ms,
        "flops": flops,
        "gflops_per_s": median(&ms).map(|m| flops / (m * 1e6)),
        "gflops_per_s_best": flops / (best * 1e6),
    }));
    Ok(())
}

/// An n×n by n×n f32 matmul through candle, `runs` times after one warm-up.
fn matmul(n: usize, args: &BenchArgs) -> Result<(), String> {
    let err = |e: candle_core::Error| e.to_string();
    let a = (Tensor::arange(0u32, (n * n) as u32, &Device::Cpu)
        .map_err(err)?
        .to_dtype(DType::F32)
        .map_err(err)?
        / (n * n) as f64)
        .map_err(err)?
        .reshape((n, n))
        .map_err(err)?;
    let b = a.t().map_err(err)?.contiguous().map_err(err)?;
    a.matmul(&b).map_err(err)?; // warm-up: thread pool start, page faults
    let mut ms = Vec::new();
    for _ in 0..args.runs.max(1) {
        let t = Instant::now();
        let c = a.matmul(&b).map_err(err)?;
        ms.push(ms_since(t));
        drop(c);
    }
    let flops = 2.0 * (n as f64).powi(3);
    let best = ms.iter().copied().fold(f64::INFINITY, f64::min);
    emit(serde_json::json!({
        "kind": "matmul",
        "n": n,
        "runs": ms.len(),
        "ms": median(&ms),
        "ms_runs": ms,
        "flops": flops,
        "gflops_per_s": median(&ms).map(|m| flops / (m * 1e6)),
        "gflops_per_s_best": flops / (best * 1e6),
        "threads": threads_json(&args.threads_label),
        "os_threads": os_threads(),
    }));
    Ok(())
}

//! The native command line: the same engine as the page, for batches and for checking the engine
//! against other implementations. `salient help` and `salient help <command>` say how to use it.
//!
//!     salient attribute --model M.gguf --text "The capital of France is" --json
//!     salient attribute --model M.gguf --texts prompts.txt          (one JSON object per line)
//!     salient evaluate --model M.gguf --sample 30 --json          (the ground-truth report card)
//!     salient components --model M.gguf --text "The capital of France is" --json
//!     salient bench --model M.gguf --tokens 16,64 --methods forward,saliency --runs 5

mod attribute;
mod bench;
mod components;
mod evaluate;

use candle_core::DType;
use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Parser, Subcommand, ValueEnum};
use salient::engine::attribution::methods;
use salient::engine::cpu::kernels::decoded_storage;
use salient::engine::model::weights::WeightStorage;
use salient::engine::runtime::context::GraphBudget;
use salient::engine::runtime::parallel;
use salient::engine::runtime::progress::ProgressSink;
use salient::engine::{EngineError, Model, RunContext};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "salient",
    version,
    about = "Which input tokens a language model's next-token prediction leans on, computed from a \
             GGUF model on this machine: the engine of the Salient page, for batches and checks."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Explain the next token of a text, or of each line of a file.
    ///
    /// Prints a table of token scores, or JSON. On a terminal it shows how far each run has come
    /// ("salient: 37 %") on stderr.
    Attribute(attribute::AttributeArgs),
    /// Which parts of the model wrote a prediction: each head's, MLP's and bias's share of the
    /// explained logit (direct logit attribution), the logit lens, the token × layer map.
    Components(components::ComponentsArgs),
    /// List the attribution methods.
    Methods,
    /// Time loads, forward passes and methods; one JSON line per configuration.
    ///
    /// Each line holds each of R runs' load, forward and attribution times in ms, medians, CPU
    /// time, peak RSS (VmHWM, the process's so far: give one configuration per process for
    /// per-configuration peaks), thread counts (the engine's pool: RAYON_NUM_THREADS, else every
    /// core) and estimated FLOPs. `forward` as a method is the forward pass alone.
    Bench(bench::BenchArgs),
    /// How often each method finds evidence known to be there: a report card on a ground-truth
    /// suite (the built-in one by default).
    ///
    /// Items the model gets wrong are left out and listed; each method's hit rate (the top-ranked
    /// token is evidence), mean evidence rank and share of |score| on the evidence, per family,
    /// with 95 % bootstrap intervals, beside a random map's.
    Evaluate(evaluate::EvaluateArgs),
    /// Print the built-in ground-truth suite as JSON lines.
    Suite,
}

fn main() -> ExitCode {
    configure_threads();
    // clap prints usage errors (exit 2) and help (exit 0) itself.
    match Cli::parse().command {
        Command::Attribute(args) => parallel::on_pool(|| attribute::run(args)),
        Command::Bench(args) => match parallel::on_pool(|| bench::run(&args)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(message) => fail(&message),
        },
        Command::Evaluate(args) => parallel::on_pool(|| evaluate::run(args)),
        Command::Components(args) => parallel::on_pool(|| components::run(args)),
        Command::Suite => evaluate::print_builtin(),
        Command::Methods => {
            for m in methods::METHODS {
                let sign = if m.signed() { " (signed)" } else { "" };
                println!("{:<22} {}{sign}", m.name(), m.label());
            }
            ExitCode::SUCCESS
        }
    }
}

/// Before any thread starts: the engine splits the work over rayon's pool (`RAYON_NUM_THREADS`,
/// else every core), and candle keeps its own elementwise pool to one thread, whose spinning
/// workers would otherwise take cores from the engine's. candle re-reads the core count from
/// /proc on every matmul unless `RAYON_NUM_THREADS` says it, so it is always set.
fn configure_threads() {
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        std::env::set_var("RAYON_NUM_THREADS", cores.to_string());
    }
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        std::env::set_var("CANDLE_NUM_THREADS", "1");
    }
}

/// Where a run's passes compute.
#[derive(Clone, Copy, PartialEq, ValueEnum)]
enum BackendChoice {
    /// This machine's cores.
    Cpu,
    /// The GPU, through wgpu (Vulkan, Metal or DX12); a GPU that fails falls back to the CPU.
    Gpu,
}

/// How the CLI keeps the model's weights.
#[derive(Clone, Copy, ValueEnum)]
enum Weights {
    /// Decoded once at load, as this CPU's kernels read them best: about 4 bytes per weight more
    /// memory, no decoding per run.
    Decoded,
    /// Kept as in the file and decoded while each product needs them: the page's way, the least
    /// memory.
    Encoded,
}

impl Weights {
    fn storage(self) -> WeightStorage {
        match self {
            Weights::Decoded => decoded_storage(),
            Weights::Encoded => WeightStorage::Encoded,
        }
    }
}

/// A parser for one of an engine enum's values by name, listing the names in `--help`.
fn named<T: Copy + Send + Sync + 'static>(
    all: &'static [T],
    name: fn(T) -> &'static str,
) -> impl TypedValueParser<Value = T> {
    PossibleValuesParser::new(all.iter().map(|value| name(*value)))
        .map(move |chosen| *all.iter().find(|value| name(**value) == chosen).expect("listed"))
}

/// A count of at least one.
fn positive(value: &str) -> Result<usize, String> {
    match value.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("{value:?} is not a positive whole number")),
    }
}

/// The CLI's graph budget, as `cpu::memory` estimates graphs: 1.5 times the page's. The estimate
/// is an upper bound of the page's wasm memory; natively a graph takes about half of it, so the
/// CLI's peak RSS stays under 1.0 GB at every length the bench runs, and long texts recompute
/// fewer blocks.
const NATIVE_GRAPH_BUDGET: GraphBudget = GraphBudget(768.0 * 1024.0 * 1024.0);

/// The CLI's model: f32, its weights stored as asked.
fn load_model(bytes: Vec<u8>, weights: Weights) -> Result<Model, EngineError> {
    Model::load_with(bytes, DType::F32, weights.storage())
}

/// A run's context on the CLI: the native graph budget, and the progress line where there is one.
fn native_context(progress: ProgressSink) -> RunContext {
    RunContext { progress, graph_budget: NATIVE_GRAPH_BUDGET, ..RunContext::default() }
}

/// `text` safe to print on a terminal: control characters (an escape sequence could recolour,
/// move the cursor or rewrite the window title) and the marks that reorder text on screen
/// become `\u{…}`. Errors and tables show strings from the model file and the command line.
fn terminal_safe(text: &str) -> String {
    let reorders = |c: char| matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
    text.chars()
        .map(|c| match c.is_control() || reorders(c) {
            true => format!("\\u{{{:x}}}", c as u32),
            false => c.to_string(),
        })
        .collect()
}

fn fail(message: &str) -> ExitCode {
    eprintln!("salient: {}", terminal_safe(message));
    ExitCode::FAILURE
}

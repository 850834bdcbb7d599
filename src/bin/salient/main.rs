//! The native command line: the same engine as the page, for batches and for checking the engine
//! against other implementations.
//!
//!     salient attribute --model M.gguf --text "The capital of France is" --json
//!     salient attribute --model M.gguf --texts prompts.txt          (one JSON object per line)
//!     salient bench --model M.gguf --tokens 16,64 --methods forward,saliency --runs 5

mod bench;

use candle_core::DType;
use salient::engine;
use salient::engine::api::expected_work;
use salient::engine::attribution::grouping::{self, Granularity};
use salient::engine::attribution::methods;
use salient::engine::model::weights::WeightStorage;
use salient::engine::runtime::context::GraphBudget;
use salient::engine::runtime::parallel;
use salient::engine::runtime::progress::{Progress, ProgressSink};
use salient::engine::{
    Attribution, Baseline, Model, Request, RunContext, TargetChoice, TargetKind,
};
use sha2::{Digest, Sha256};
use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};

const USAGE: &str = "\
usage:
  salient attribute --model PATH.gguf (--text TEXT | --texts FILE)
                    [--target TOKEN_TEXT | --target-id ID] [--method NAME] [--top-k K] [--json]
                    [--faithfulness] [--continuation TEXT] [--group token|word|sentence]
                    [--weights decoded|encoded]
  salient methods
  salient bench --model PATH.gguf [--tokens N,N,..] [--methods NAME,..] [--runs R] [--load-runs R]
                [--steps N] [--threads-label L] [--weights W] [--texts-only | --convergence N,N,..]
  salient bench --matmul N [--runs R] [--threads-label L]

  --text TEXT      the text whose next token is explained
  --texts FILE     one text per line; prints one JSON object per line (the model loads once)
  --target TEXT    the token to explain, as text that is exactly one token (\" Paris\");
                   default: the model's top prediction
  --target-id ID   the token to explain, by id
  --target-kind K  what is explained: prob (default), logprob or logit of the target
  --foil TEXT      contrastive: explain value(target) - value(foil) (also --foil-id ID)
  --method NAME    attribution method (default: saliency); `salient methods` lists them
  --top-k K        how many top predictions to report (default 5)
  --steps N        integrated_gradients: the most gradients its adaptive path integral may
                   take, 4 to 1024 (default 32; it stops earlier once the scores add up)
  --baseline B     pad (default: the padding token's embedding) or zero
  --samples N      smoothgrad: noisy copies (default 16)
  --sigma S        smoothgrad: noise std as a fraction of the embeddings' RMS (default 0.1)
  --seed N         smoothgrad noise and random orders (default 0)
  --layer L        attention: layer (default: mean over layers)
  --head H         attention: head (default: mean over heads)
  --faithfulness   also report the deletion curve (p(target) as the top-scored tokens are
                   replaced by the baseline), comprehensiveness and sufficiency, and the same
                   two numbers for random orders (seeded by --seed)
  --continuation TEXT  also explain each token of TEXT, read as following the text: one row of
                   scores over all earlier tokens per continuation token (the target kind applies,
                   the target and foil do not)
  --group G        token (default), word or sentence: also report scores summed per group
  --json           print JSON (always on with --texts)
  --weights W      decoded (default): the weights are decoded to f32 once, at load (about 4 bytes
                   per weight more memory, no decoding per run); encoded: kept as in the file and
                   decoded while each product needs them (the page's way, the least memory)

  attribute shows how far each run has come (\"salient: 37 %\") on stderr when that is a terminal.

  bench prints one JSON line per configuration (tokens x method; `forward` is the forward pass
  alone): each of R runs' load, forward and attribution times in ms (default 5 runs, 64 tokens,
  saliency, 32 integrated-gradients steps), medians, CPU time, peak RSS (VmHWM, the process's so
  far: give one configuration per process for per-configuration peaks), thread counts
  (the engine's pool: RAYON_NUM_THREADS, else every core) and estimated FLOPs. --texts-only prints the texts
  of N tokens; --matmul N times an N×N×N f32 matmul (GFLOP/s); --convergence N,.. prints
  integrated gradients' completeness error against steps on three prompts (the engine's adaptive
  rule, Gauss–Legendre, midpoint, trapezoid).";

struct Args {
    model: String,
    texts: Vec<String>,
    batch: bool,
    /// Everything but the text, shared by every text of a batch.
    request: Request,
    /// `None` for the per-token view, which needs no grouping.
    group: Option<Granularity>,
    json: bool,
    weights: WeightStorage,
}

fn main() -> ExitCode {
    configure_threads();
    let argv: Vec<String> = std::env::args().skip(1).collect();
    match argv.first().map(String::as_str) {
        Some("attribute") => match parse(&argv[1..]) {
            Ok(args) => parallel::on_pool(|| run(args)),
            Err(message) => usage_error(&message),
        },
        Some("bench") => match parse_bench(&argv[1..]) {
            Ok(args) => match parallel::on_pool(|| bench::run(&args)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(message) => fail(&message),
            },
            Err(message) => usage_error(&message),
        },
        Some("methods") => {
            for m in methods::METHODS {
                println!(
                    "{:<12} {}{}",
                    m.name(),
                    m.label(),
                    if m.signed() { " (signed)" } else { "" }
                );
            }
            ExitCode::SUCCESS
        }
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        _ => usage_error("expected a command"),
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

fn usage_error(message: &str) -> ExitCode {
    eprintln!("salient: {}\n{USAGE}", terminal_safe(message));
    ExitCode::from(2)
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

fn parse(argv: &[String]) -> Result<Args, String> {
    let mut model = None;
    let mut text = None;
    let mut texts_file = None;
    let mut request = Request::new("", "saliency");
    let mut json = false;
    let mut group = None;
    let mut weights = salient::engine::cpu::kernels::decoded_storage();
    let mut it = argv.iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().cloned().ok_or_else(|| format!("{flag} needs a value"));
        let params = &mut request.params;
        match flag.as_str() {
            "--model" => model = Some(value()?),
            "--text" => text = Some(value()?),
            "--texts" => texts_file = Some(value()?),
            "--target" => request.target.token = TargetChoice::Text(value()?),
            "--target-id" => request.target.token = TargetChoice::Id(number(flag, &value()?)?),
            "--foil" => request.target.foil = Some(TargetChoice::Text(value()?)),
            "--foil-id" => request.target.foil = Some(TargetChoice::Id(number(flag, &value()?)?)),
            "--target-kind" => {
                let v = value()?;
                request.target.kind = TargetKind::from_name(&v)
                    .ok_or_else(|| format!("--target-kind: {v:?} is not prob, logprob or logit"))?;
            }
            "--method" => request.method = value()?,
            "--top-k" => request.top_k = number(flag, &value()?)?,
            "--steps" => params.steps = number(flag, &value()?)?,
            "--baseline" => {
                let v = value()?;
                params.baseline = Baseline::from_name(&v)
                    .ok_or_else(|| format!("--baseline: {v:?} is not pad or zero"))?;
            }
            "--samples" => params.samples = number(flag, &value()?)?,
            "--sigma" => params.sigma = number(flag, &value()?)?,
            "--seed" => params.seed = number(flag, &value()?)?,
            "--layer" => params.layer = Some(number(flag, &value()?)?),
            "--head" => params.head = Some(number(flag, &value()?)?),
            "--faithfulness" => request.faithfulness = true,
            "--continuation" => request.continuation = Some(value()?),
            "--group" => {
                let v = value()?;
                let granularity = Granularity::from_name(&v)
                    .ok_or_else(|| format!("--group: {v:?} is not token, word or sentence"))?;
                group = Some(granularity).filter(|g| *g != Granularity::Token);
            }
            "--json" => json = true,
            "--weights" => weights = weight_storage(&value()?)?,
            other => return Err(format!("unknown option {other}")),
        }
    }
    let model = model.ok_or("--model is required")?;
    let (texts, batch) = match (text, texts_file) {
        (Some(t), None) => (vec![t], false),
        (None, Some(path)) => {
            let all =
                std::fs::read_to_string(&path).map_err(|e| format!("cannot read {path}: {e}"))?;
            (all.lines().filter(|l| !l.is_empty()).map(String::from).collect(), true)
        }
        _ => return Err("give exactly one of --text and --texts".into()),
    };
    Ok(Args { model, texts, batch, request, group, json: json || batch, weights })
}

/// The CLI's graph budget, as `engine::memory` estimates graphs: 1.5 times the page's. The
/// estimate is fitted to the page's wasm memory; natively a graph takes about half of it, so the
/// CLI's peak RSS stays under 1.0 GB (a quarter of the PyTorch anchor's) at every length the bench
/// runs, and at 256 tokens a gradient computes 8 of the 30 blocks twice instead of 15.
const NATIVE_GRAPH_BUDGET: GraphBudget = GraphBudget(768.0 * 1024.0 * 1024.0);

/// The CLI's model: f32, its weights stored as asked.
fn load_model(bytes: Vec<u8>, weights: WeightStorage) -> Result<Model, engine::EngineError> {
    Model::load_with(bytes, DType::F32, weights)
}

/// A run's context on the CLI: the native graph budget, and the progress line where there is one.
fn native_context(progress: ProgressSink) -> RunContext {
    RunContext { progress, graph_budget: NATIVE_GRAPH_BUDGET, ..RunContext::default() }
}

/// `decoded` keeps them as this CPU's kernels read them best (`cpu::kernels::decoded_storage`).
fn weight_storage(value: &str) -> Result<WeightStorage, String> {
    match value {
        "encoded" => Ok(WeightStorage::Encoded),
        "decoded" => Ok(salient::engine::cpu::kernels::decoded_storage()),
        _ => Err(format!("--weights: {value:?} is not decoded or encoded")),
    }
}

fn number<T: std::str::FromStr>(flag: &str, value: &str) -> Result<T, String> {
    value.parse().map_err(|_| format!("{flag}: {value:?} is not a valid number here"))
}

fn parse_bench(argv: &[String]) -> Result<bench::BenchArgs, String> {
    let mut args = bench::BenchArgs::default();
    let mut it = argv.iter();
    while let Some(flag) = it.next() {
        if flag == "--texts-only" {
            args.texts_only = true;
            continue;
        }
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let positive = || match value.parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(format!("{flag}: {value:?} is not a positive number")),
        };
        match flag.as_str() {
            "--model" => args.model = Some(value.clone()),
            "--tokens" => args.tokens = bench::parse_list(flag, value)?,
            "--runs" => args.runs = positive()?,
            "--load-runs" => args.load_runs = Some(positive()?),
            "--method" | "--methods" => args.methods = bench::parse_list(flag, value)?,
            "--steps" => args.steps = positive()?,
            "--threads-label" => args.threads_label = Some(value.clone()),
            "--weights" => args.weights = weight_storage(value)?,
            "--matmul" => args.matmul = Some(positive()?),
            "--convergence" => args.convergence = Some(bench::parse_list(flag, value)?),
            other => return Err(format!("unknown option {other}")),
        }
    }
    if args.model.is_none() && args.matmul.is_none() {
        return Err("--model is required".into());
    }
    if args.tokens.contains(&0) {
        return Err("--tokens: counts must be positive".into());
    }
    Ok(args)
}

fn run(args: Args) -> ExitCode {
    let bytes = match std::fs::read(&args.model) {
        Ok(b) => b,
        Err(e) => return fail(&format!("cannot read {}: {e}", args.model)),
    };
    let model_json = serde_json::json!({
        "file": std::path::Path::new(&args.model).file_name().map(|n| n.to_string_lossy().into_owned()),
        "sha256": hex(&Sha256::digest(&bytes)),
        "bytes": bytes.len(),
    });
    let model = match load_model(bytes, args.weights) {
        Ok(m) => m,
        Err(e) => return fail(&e.to_string()),
    };
    let model_json = {
        let mut m = model_json;
        m["architecture"] = model.config().architecture.clone().into();
        m
    };
    // How far each run has come, on a terminal only (pipes and logs get the results alone).
    let terminal = std::io::stderr().is_terminal();
    let context = native_context(if terminal {
        let shown = AtomicU64::new(u64::MAX);
        ProgressSink::new(move |progress| show_progress(&shown, progress))
    } else {
        ProgressSink::default()
    });
    let mut failed = false;
    for text in &args.texts {
        let request = Request { text: text.clone(), ..args.request.clone() };
        if terminal {
            // A text the engine refuses fails in `attribute` below, with its message.
            let tokens = model.tokenize_input(text, request.max_tokens).map(|tokens| tokens.len());
            context
                .progress
                .begin(tokens.and_then(|seq| expected_work(&model, seq, &request)).unwrap_or(0));
        }
        let attribution = engine::attribute(&model, &request, &context);
        if terminal {
            eprint!("\r\x1b[K"); // erases the progress line
        }
        match attribution {
            Ok(result) if args.json => println!("{}", to_json(&result, &model_json, args.group)),
            Ok(result) => print_table(&result, args.group),
            Err(e) if args.batch => {
                failed = true;
                println!("{}", serde_json::json!({ "text": text, "error": e.to_string() }));
            }
            Err(e) => return fail(&e.to_string()),
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// "salient: 37 %" in place on stderr, when the whole percent changes from the one `shown` (the
/// faithfulness check is not in the estimate, so a run with it stays at 99 % a while).
fn show_progress(shown: &AtomicU64, progress: Progress) {
    let percent = progress.percent() as u64;
    if shown.swap(percent, Ordering::Relaxed) != percent {
        eprint!("\rsalient: {percent} %");
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("salient: {}", terminal_safe(message));
    ExitCode::FAILURE
}

fn to_json(
    result: &Attribution,
    model: &serde_json::Value,
    group: Option<Granularity>,
) -> serde_json::Value {
    let mut json = serde_json::json!({
        "tokens": result.tokens.iter().map(|t| serde_json::json!({ "id": t.id, "text": t.text })).collect::<Vec<_>>(),
        "target": result.target,
        "foil": result.foil,
        "target_kind": result.target_kind,
        "value": result.value,
        "top_k": result.top_k,
        "method": result.method,
        "params": result.params,
        "scores": result.scores,
        "completeness_error": result.completeness_error,
        "path_gradients": result.path_gradients,
        "model": model,
    });
    if let Some(faithfulness) = &result.faithfulness {
        json["faithfulness"] = serde_json::json!(faithfulness);
    }
    if let Some(continuation) = &result.continuation {
        json["continuation"] = serde_json::json!({
            "tokens": continuation.tokens.iter().map(|t| serde_json::json!({ "id": t.id, "text": t.text })).collect::<Vec<_>>(),
            "output_start": continuation.output_start,
            "rows": continuation.rows,
        });
    }
    if let Some(granularity) = group {
        json["group"] = granularity.name().into();
        json["groups"] =
            serde_json::json!(grouping::group(&result.tokens, &result.scores, granularity));
    }
    json
}

fn print_table(result: &Attribution, group: Option<Granularity>) {
    let visible = |text: &str| terminal_safe(&salient::engine::model::token_text::visible(text));
    println!(
        "target \"{}\" (id {}, p = {:.4}), method {}",
        terminal_safe(&result.target.text),
        result.target.id,
        result.target.prob,
        result.method
    );
    let max = result.scores.iter().fold(0f32, |m, s| m.max(s.abs())).max(f32::MIN_POSITIVE);
    let bar = |score: f32| "█".repeat((score.abs() / max * 30.0).round() as usize);
    match group {
        None => {
            for (token, score) in result.tokens.iter().zip(&result.scores) {
                println!(
                    "{:>16} {:>7} {:>+12.6} {}",
                    visible(&token.text),
                    token.id,
                    score,
                    bar(*score)
                );
            }
        }
        Some(granularity) => {
            // Sums can exceed the largest token score: the bar is capped at the scale's end.
            for g in grouping::group(&result.tokens, &result.scores, granularity) {
                let tokens = format!("{}-{}", g.first, g.last);
                println!(
                    "{:>32} {:>7} {:>+12.6} {}",
                    visible(&g.text),
                    tokens,
                    g.sum,
                    bar(g.sum.abs().min(max))
                );
            }
        }
    }
    if let Some(f) = &result.faithfulness {
        let curve: Vec<String> =
            f.deletion_curve.iter().map(|(fraction, p)| format!("{fraction:.2}:{p:.4}")).collect();
        println!("deletion curve (fraction replaced: p) {}", curve.join(" "));
        println!(
            "comprehensiveness {:+.4} (random {:+.4}), sufficiency {:+.4} (random {:+.4})",
            f.comprehensiveness, f.random_comprehensiveness, f.sufficiency, f.random_sufficiency
        );
    }
    if let Some(c) = &result.continuation {
        println!("continuation: each token's scores over the tokens before it");
        for row in &c.rows {
            let scores: Vec<String> = row.scores.iter().map(|s| format!("{s:+.4}")).collect();
            println!(
                "{:>16} p = {:.4}  {}",
                visible(&row.target.text),
                row.target.prob,
                scores.join(" ")
            );
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

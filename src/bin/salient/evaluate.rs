//! `salient evaluate`: the ground-truth report card of each method on a model; `salient suite`:
//! the built-in suite as JSON lines.

use crate::attribute::{loaded, progress_context, On};
use crate::{fail, positive, terminal_safe, BackendChoice, Weights};
use clap::builder::PossibleValuesParser;
use clap::Args;
use salient::engine::attribution::methods::{MethodParams, METHODS};
use salient::engine::evaluation::suite::Suite;
use salient::engine::evaluation::{evaluate, templates, MethodPlan, Plan, Report, Row};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

#[derive(Args)]
pub struct EvaluateArgs {
    /// The GGUF model file.
    #[arg(long, value_name = "PATH.gguf")]
    model: PathBuf,
    /// A suite of JSON lines (docs/ground-truth.md), or `builtin`.
    #[arg(long, value_name = "FILE|builtin", default_value = "builtin")]
    suite: String,
    /// The methods to evaluate, comma-separated (by default all).
    #[arg(long, value_delimiter = ',',
          value_parser = PossibleValuesParser::new(METHODS.iter().map(|m| m.name())))]
    methods: Vec<String>,
    /// Items per family (a seeded sample); by default every item.
    #[arg(long, value_name = "N", value_parser = positive)]
    sample: Option<usize>,
    /// Orders the sample, and seeds the random baseline and the bootstrap intervals.
    #[arg(long, value_name = "N", default_value_t = 0)]
    seed: u64,
    /// integrated_gradients: the most gradients its path integral may take.
    #[arg(long, value_name = "N", default_value_t = MethodParams::default().steps)]
    steps: usize,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    /// Where the passes compute (a GPU that fails hands the rest to the CPU).
    #[arg(long, value_enum, default_value = "cpu")]
    backend: BackendChoice,
    /// How to keep the model's weights (by default as suits the backend).
    #[arg(long, value_enum)]
    weights: Option<Weights>,
}

pub fn run(args: EvaluateArgs) -> ExitCode {
    let suite = match args.suite.as_str() {
        "builtin" => Ok(templates::builtin()),
        path => std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {path}: {e}"))
            .and_then(|text| Suite::from_jsonl(&text).map_err(|e| e.to_string())),
    };
    let suite = match suite {
        Ok(suite) => suite,
        Err(message) => return fail(&message),
    };
    let (model, model_json) = match loaded(&args.model, args.backend, args.weights) {
        Ok(loaded) => loaded,
        Err(message) => return fail(&message),
    };
    let terminal = std::io::stderr().is_terminal();
    let context = progress_context(terminal);
    let mut on = On::chosen(args.backend, &model);
    let names = match args.methods.is_empty() {
        true => METHODS.iter().map(|m| m.name().to_string()).collect(),
        false => args.methods.clone(),
    };
    let params = MethodParams { steps: args.steps, seed: args.seed, ..MethodParams::default() };
    // One method at a time, so each is timed on its own (each checks the model's answers again:
    // one forward pass per item, small beside any method).
    let mut report: Option<Report> = None;
    let mut timings = Vec::new();
    for name in names {
        let plan = Plan {
            methods: vec![MethodPlan { method: name.clone(), per_family: args.sample }],
            params: params.clone(),
            seed: args.seed,
        };
        let started = Instant::now();
        let outcome = on.compute(|backend| evaluate(backend, &model, &suite, &plan, &context));
        if terminal {
            eprint!("\r\x1b[K");
        }
        let one = match outcome {
            Ok(one) => one,
            Err(e) => return fail(&e.to_string()),
        };
        let ms = started.elapsed().as_secs_f64() * 1e3;
        let items = one.families.iter().map(|f| f.checked).sum::<usize>().max(1);
        timings.push(
            serde_json::json!({ "method": name, "ms": ms, "ms_per_item": ms / items as f64 }),
        );
        match &mut report {
            None => report = Some(one),
            Some(all) => {
                all.methods.extend(one.methods);
                all.items.extend(one.items);
            }
        }
    }
    let report = report.expect("at least one method");
    if args.json {
        let mut json = serde_json::to_value(&report).expect("a report serialises");
        json["model"] = model_json;
        json["backend"] = on.json();
        json["suite"] = args.suite.clone().into();
        json["sample"] = args.sample.into();
        json["timings"] = timings.into();
        println!("{json}");
    } else {
        print_table(&report);
    }
    ExitCode::SUCCESS
}

fn print_table(report: &Report) {
    for family in &report.families {
        let usable = if family.usable { "" } else { "  (too few scored items: unusable)" };
        println!(
            "{}: {} of {} checked items scored ({} in the suite){usable}",
            family.family.label(),
            family.scored,
            family.checked,
            family.size
        );
    }
    println!(
        "{:<22} {:<16} {:>5} {:>8} {:>15} {:>9} {:>8}",
        "method", "family", "items", "hit", "95 % CI", "rank", "mass"
    );
    let line = |row: &Row| {
        let note = if row.target_independent { "  (target-independent)" } else { "" };
        println!(
            "{:<22} {:<16} {:>5} {:>8.3} {:>15} {:>9.2} {:>8.3}{note}",
            row.method,
            row.family.name(),
            row.summary.items,
            row.summary.hit_rate,
            format!("[{:.2}, {:.2}]", row.summary.ci[0], row.summary.ci[1]),
            row.summary.mean_rank,
            row.summary.evidence_mass
        );
    };
    report.methods.iter().chain(&report.random).for_each(line);
    for skipped in &report.skipped {
        println!("skipped {}: {}", skipped.id, terminal_safe(&skipped.reason));
    }
}

/// `salient suite`: the built-in suite, one JSON object per line.
pub fn print_builtin() -> ExitCode {
    use std::io::Write;
    // A closed pipe (`salient suite | head`) is not an error worth a panic.
    match std::io::stdout().lock().write_all(templates::builtin().to_jsonl().as_bytes()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    }
}

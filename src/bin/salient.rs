//! The native command line: the same engine as the page, for batches and for checking the engine
//! against other implementations.
//!
//!     salient attribute --model M.gguf --text "The capital of France is" --json
//!     salient attribute --model M.gguf --texts prompts.txt          (one JSON object per line)

use salient::engine::{self, methods, Attribution, Model, Request, TargetChoice};
use sha2::{Digest, Sha256};
use std::process::ExitCode;

const USAGE: &str = "\
usage:
  salient attribute --model PATH.gguf (--text TEXT | --texts FILE)
                    [--target TOKEN_TEXT | --target-id ID] [--method NAME] [--top-k K] [--json]
  salient methods

  --text TEXT      the text whose next token is explained
  --texts FILE     one text per line; prints one JSON object per line (the model loads once)
  --target TEXT    the token to explain, as text that is exactly one token (\" Paris\");
                   default: the model's top prediction
  --target-id ID   the token to explain, by id
  --method NAME    attribution method (default: saliency); `salient methods` lists them
  --top-k K        how many top predictions to report (default 5)
  --json           print JSON (always on with --texts)";

struct Args {
    model: String,
    texts: Vec<String>,
    batch: bool,
    target: TargetChoice,
    method: String,
    top_k: usize,
    json: bool,
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    match argv.first().map(String::as_str) {
        Some("attribute") => match parse(&argv[1..]) {
            Ok(args) => run(args),
            Err(message) => usage_error(&message),
        },
        Some("methods") => {
            for m in methods::METHODS {
                println!("{:<12} {}{}", m.name(), m.label(), if m.signed() { " (signed)" } else { "" });
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

fn usage_error(message: &str) -> ExitCode {
    eprintln!("salient: {message}\n{USAGE}");
    ExitCode::from(2)
}

fn parse(argv: &[String]) -> Result<Args, String> {
    let mut model = None;
    let mut text = None;
    let mut texts_file = None;
    let mut target = TargetChoice::TopPrediction;
    let mut method = "saliency".to_string();
    let mut top_k = 5;
    let mut json = false;
    let mut it = argv.iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().cloned().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--model" => model = Some(value()?),
            "--text" => text = Some(value()?),
            "--texts" => texts_file = Some(value()?),
            "--target" => target = TargetChoice::Text(value()?),
            "--target-id" => {
                let v = value()?;
                target = TargetChoice::Id(v.parse().map_err(|_| format!("--target-id: {v:?} is not a token id"))?);
            }
            "--method" => method = value()?,
            "--top-k" => {
                let v = value()?;
                top_k = v.parse().map_err(|_| format!("--top-k: {v:?} is not a number"))?;
            }
            "--json" => json = true,
            other => return Err(format!("unknown option {other}")),
        }
    }
    let model = model.ok_or("--model is required")?;
    let (texts, batch) = match (text, texts_file) {
        (Some(t), None) => (vec![t], false),
        (None, Some(path)) => {
            let all = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {path}: {e}"))?;
            (all.lines().filter(|l| !l.is_empty()).map(String::from).collect(), true)
        }
        _ => return Err("give exactly one of --text and --texts".into()),
    };
    Ok(Args { model, texts, batch, target, method, top_k, json: json || batch })
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
    let model = match Model::load(bytes) {
        Ok(m) => m,
        Err(e) => return fail(&e.to_string()),
    };
    let model_json = {
        let mut m = model_json;
        m["architecture"] = model.config().architecture.clone().into();
        m
    };
    let mut failed = false;
    for text in &args.texts {
        let request = Request { text: text.clone(), target: args.target.clone(), method: args.method.clone(), top_k: args.top_k };
        match engine::attribute(&model, &request) {
            Ok(result) if args.json => println!("{}", to_json(&result, &model_json)),
            Ok(result) => print_table(&result),
            Err(e) if args.batch => {
                failed = true;
                println!("{}", serde_json::json!({ "text": text, "error": e.to_string() }));
            }
            Err(e) => return fail(&e.to_string()),
        }
    }
    if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("salient: {message}");
    ExitCode::FAILURE
}

fn to_json(result: &Attribution, model: &serde_json::Value) -> serde_json::Value {
    serde_json::json!({
        "tokens": result.tokens.iter().map(|t| serde_json::json!({ "id": t.id, "text": t.text })).collect::<Vec<_>>(),
        "target": result.target,
        "top_k": result.top_k,
        "method": result.method,
        "scores": result.scores,
        "model": model,
    })
}

fn print_table(result: &Attribution) {
    use engine::token_text::visible;
    println!("target {:?} (id {}, p = {:.4}), method {}", result.target.text, result.target.id, result.target.prob, result.method);
    let max = result.scores.iter().fold(0f32, |m, s| m.max(s.abs())).max(f32::MIN_POSITIVE);
    for (token, score) in result.tokens.iter().zip(&result.scores) {
        let bar = "█".repeat((score.abs() / max * 30.0).round() as usize);
        println!("{:>16} {:>7} {:>+12.6} {bar}", visible(&token.text), token.id, score);
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

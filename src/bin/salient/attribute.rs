//! `salient attribute`: the engine's answer for a text, or for each line of a file, as a table
//! or as JSON.

use crate::{fail, load_model, named, native_context, terminal_safe, BackendChoice, Weights};
use clap::builder::PossibleValuesParser;
use clap::{ArgGroup, Args};
use salient::engine;
use salient::engine::api::expected_work;
use salient::engine::attribution::grouping::{self, Granularity};
use salient::engine::attribution::methods::{MethodParams, METHODS};
use salient::engine::gpu::GpuDecoder;
use salient::engine::runtime::progress::{Progress, ProgressSink};
use salient::engine::{Attribution, Backend, Baseline, EngineError, Model, Request, RunContext};
use salient::engine::{TargetChoice, TargetKind};
use sha2::{Digest, Sha256};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Args)]
#[command(group(ArgGroup::new("input").required(true).args(["text", "texts"])))]
pub struct AttributeArgs {
    /// The GGUF model file.
    #[arg(long, value_name = "PATH.gguf")]
    model: PathBuf,
    /// The text whose next token is explained.
    #[arg(long)]
    text: Option<String>,
    /// A file of texts, one per line: prints one JSON object per line (the model loads once).
    #[arg(long, value_name = "FILE")]
    texts: Option<PathBuf>,
    /// The token to explain, as text that is exactly one token (" Paris"); by default the
    /// model's top prediction.
    #[arg(long, value_name = "TOKEN_TEXT", conflicts_with = "target_id")]
    target: Option<String>,
    /// The token to explain, by id.
    #[arg(long, value_name = "ID")]
    target_id: Option<u32>,
    /// What is explained of the target.
    #[arg(long, value_name = "KIND", default_value = "prob",
          value_parser = named(&TargetKind::ALL, TargetKind::name))]
    target_kind: TargetKind,
    /// Contrastive: explain value(target) − value(foil), the foil as one token's text.
    #[arg(long, value_name = "TOKEN_TEXT", conflicts_with = "foil_id")]
    foil: Option<String>,
    /// The foil by id.
    #[arg(long, value_name = "ID")]
    foil_id: Option<u32>,
    /// The attribution method (`salient methods` lists them with their labels).
    #[arg(long, default_value = "saliency",
          value_parser = PossibleValuesParser::new(METHODS.iter().map(|m| m.name())))]
    method: String,
    /// How many top predictions to report.
    #[arg(long, value_name = "K", default_value_t = 5)]
    top_k: usize,
    /// integrated_gradients: the most gradients its adaptive path integral may take, 4 to 1024
    /// (it stops earlier once the scores add up).
    #[arg(long, value_name = "N", default_value_t = MethodParams::default().steps)]
    steps: usize,
    /// What replaces a token where a method needs "no information": the padding token's
    /// embedding or the zero vector.
    #[arg(long, value_name = "B", default_value = "pad",
          value_parser = named(&Baseline::ALL, Baseline::name))]
    baseline: Baseline,
    /// smoothgrad: noisy copies.
    #[arg(long, value_name = "N", default_value_t = MethodParams::default().samples)]
    samples: usize,
    /// smoothgrad: the noise's standard deviation, as a fraction of the embeddings' RMS.
    #[arg(long, value_name = "S", default_value_t = MethodParams::default().sigma)]
    sigma: f32,
    /// smoothgrad's noise, the perturbation methods' draws and the faithfulness check's random
    /// orders.
    #[arg(long, value_name = "N", default_value_t = MethodParams::default().seed)]
    seed: u64,
    /// kernel_shap, lime, shapley_sampling: what a feature is (tokens, words or sentences); the
    /// model reruns per coalition of features.
    #[arg(long, value_name = "F", default_value = "token",
          value_parser = named(&Granularity::ALL, Granularity::name))]
    features: Granularity,
    /// kernel_shap, lime, shapley_sampling: the most coalitions evaluated (forward passes), 2 to
    /// 16384.
    #[arg(long, value_name = "N", default_value_t = MethodParams::default().budget)]
    budget: usize,
    /// attention, rollout: the layer to read (by default the mean over layers).
    #[arg(long, value_name = "L")]
    layer: Option<usize>,
    /// attention: the head to read (by default the mean over heads).
    #[arg(long, value_name = "H")]
    head: Option<usize>,
    /// Also report the deletion curve (p(target) as the top-scored tokens are replaced by the
    /// baseline), comprehensiveness and sufficiency, and the same two numbers for random orders
    /// (seeded by --seed).
    #[arg(long)]
    faithfulness: bool,
    /// Also explain each token of TEXT, read as following the text: one row of scores over all
    /// earlier tokens per continuation token (the target kind applies, the target and foil do
    /// not).
    #[arg(long, value_name = "TEXT")]
    continuation: Option<String>,
    /// Also report scores summed per word or sentence.
    #[arg(long, value_name = "G", value_parser = named(&Granularity::ALL, Granularity::name))]
    group: Option<Granularity>,
    /// Print JSON (always on with --texts).
    #[arg(long)]
    json: bool,
    /// Where the passes compute. On the GPU, a run the GPU fails is redone on the CPU, with a
    /// note on stderr and in the JSON's `backend.fallback`.
    #[arg(long, value_enum, default_value = "cpu")]
    backend: BackendChoice,
    /// How to keep the model's weights: by default decoded for the CPU, encoded (as in the file,
    /// decoded by the GPU's kernels) for the GPU.
    #[arg(long, value_enum)]
    weights: Option<Weights>,
}

impl AttributeArgs {
    /// The texts to explain, and whether they came from a file (one JSON line each).
    fn texts(&self) -> Result<(Vec<String>, bool), String> {
        match (&self.text, &self.texts) {
            (Some(text), _) => Ok((vec![text.clone()], false)),
            (None, Some(path)) => {
                let all = std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                Ok((all.lines().filter(|l| !l.is_empty()).map(String::from).collect(), true))
            }
            (None, None) => Err("give --text or --texts".into()),
        }
    }

    /// Everything but the text, shared by every text of a batch.
    fn request(&self) -> Request {
        let choice = |text: &Option<String>, id: Option<u32>| match (text, id) {
            (Some(text), _) => Some(TargetChoice::Text(text.clone())),
            (None, Some(id)) => Some(TargetChoice::Id(id)),
            (None, None) => None,
        };
        let mut request = Request::new("", &self.method);
        if let Some(target) = choice(&self.target, self.target_id) {
            request.target.token = target;
        }
        request.target.foil = choice(&self.foil, self.foil_id);
        request.target.kind = self.target_kind;
        request.top_k = self.top_k;
        request.params = MethodParams {
            steps: self.steps,
            baseline: self.baseline,
            samples: self.samples,
            sigma: self.sigma,
            seed: self.seed,
            layer: self.layer,
            head: self.head,
            features: self.features,
            budget: self.budget,
        };
        request.faithfulness = self.faithfulness;
        request.continuation = self.continuation.clone();
        request
    }
}

/// The model at `path`, its weights kept for `backend` unless `weights` says, and what the JSON
/// output says of it (file, sha256, bytes, architecture).
pub fn loaded(
    path: &std::path::Path,
    backend: BackendChoice,
    weights: Option<Weights>,
) -> Result<(Model, serde_json::Value), String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut json = serde_json::json!({
        "file": path.file_name().map(|n| n.to_string_lossy().into_owned()),
        "sha256": hex(&Sha256::digest(&bytes)),
        "bytes": bytes.len(),
    });
    let weights = weights.unwrap_or(match backend {
        BackendChoice::Cpu => Weights::Decoded,
        BackendChoice::Gpu => Weights::Encoded,
    });
    let model = load_model(bytes, weights).map_err(|e| e.to_string())?;
    json["architecture"] = model.config().architecture.clone().into();
    Ok((model, json))
}

/// A native run context that shows how far each run has come on a `terminal` (pipes and logs
/// get the results alone).
pub fn progress_context(terminal: bool) -> RunContext {
    native_context(if terminal {
        let shown = AtomicU64::new(u64::MAX);
        ProgressSink::new(move |progress| show_progress(&shown, progress))
    } else {
        ProgressSink::default()
    })
}

pub fn run(args: AttributeArgs) -> ExitCode {
    let (texts, batch) = match args.texts() {
        Ok(texts) => texts,
        Err(message) => return fail(&message),
    };
    let (model, model_json) = match loaded(&args.model, args.backend, args.weights) {
        Ok(loaded) => loaded,
        Err(message) => return fail(&message),
    };
    let terminal = std::io::stderr().is_terminal();
    let context = progress_context(terminal);
    let mut on = On::chosen(args.backend, &model);
    let (base, group, json) = (args.request(), args.group, args.json || batch);
    let mut failed = false;
    for text in &texts {
        let request = Request { text: text.clone(), ..base.clone() };
        if terminal {
            // A text the engine refuses fails in `attribute` below, with its message.
            let tokens = model.tokenize_input(text, request.max_tokens).map(|tokens| tokens.len());
            context
                .progress
                .begin(tokens.and_then(|seq| expected_work(&model, seq, &request)).unwrap_or(0));
        }
        let attribution = on.run(&model, &request, &context);
        if terminal {
            eprint!("\r\x1b[K"); // erases the progress line
        }
        match attribution {
            Ok(result) if json => println!("{}", to_json(&result, &model_json, &on, group)),
            Ok(result) => print_table(&result, &on, group),
            Err(e) if batch => {
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

/// The backend runs compute on, and why it is not the one asked for.
pub struct On {
    backend: Backend,
    adapter: Option<String>,
    fallback: Option<String>,
}

impl On {
    /// The backend `choice` names, or the CPU (with the reason, also on stderr) when the GPU is
    /// not there.
    pub fn chosen(choice: BackendChoice, model: &Model) -> On {
        if choice == BackendChoice::Cpu {
            return On { backend: Backend::Cpu, adapter: None, fallback: None };
        }
        match pollster::block_on(GpuDecoder::new(&model.architecture)) {
            Ok(decoder) => On {
                adapter: Some(decoder.adapter().name.clone()),
                backend: Backend::Gpu(decoder.into()),
                fallback: None,
            },
            Err(e) => On::cpu_after(e),
        }
    }

    /// The CPU, after the GPU failed with `error`.
    fn cpu_after(error: EngineError) -> On {
        eprintln!("salient: {error}; computing on the CPU instead");
        On { backend: Backend::Cpu, adapter: None, fallback: Some(error.to_string()) }
    }

    /// `request` on this backend.
    fn run(
        &mut self,
        model: &Model,
        request: &Request,
        context: &RunContext,
    ) -> Result<Attribution, EngineError> {
        self.compute(|backend| engine::run_on(backend, model, request, context))
    }

    /// `work` on this backend; a GPU failure moves this and every later run to the CPU.
    pub fn compute<T, F: std::future::Future<Output = Result<T, EngineError>>>(
        &mut self,
        work: impl Fn(Backend) -> F,
    ) -> Result<T, EngineError> {
        match pollster::block_on(work(self.backend.clone())) {
            Err(error @ EngineError::Gpu(_)) => {
                *self = On::cpu_after(error);
                pollster::block_on(work(Backend::Cpu))
            }
            other => other,
        }
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "name": self.backend.name(),
            "adapter": self.adapter,
            "fallback": self.fallback,
        })
    }
}

/// "salient: 37 %" in place on stderr, when the whole percent changes from the one `shown` (the
/// faithfulness check is not in the estimate, so a run with it stays at 99 % a while).
pub fn show_progress(shown: &AtomicU64, progress: Progress) {
    let percent = progress.percent() as u64;
    if shown.swap(percent, Ordering::Relaxed) != percent {
        eprint!("\rsalient: {percent} %");
    }
}

fn to_json(
    result: &Attribution,
    model: &serde_json::Value,
    on: &On,
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
        "standard_errors": result.standard_errors,
        "evaluations": result.evaluations,
        "model": model,
        "backend": on.json(),
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

fn print_table(result: &Attribution, on: &On, group: Option<Granularity>) {
    let visible = |text: &str| terminal_safe(&salient::engine::model::token_text::visible(text));
    let backend = match &on.adapter {
        Some(adapter) => format!("GPU: {}", terminal_safe(adapter)),
        None => "CPU".into(),
    };
    println!(
        "target \"{}\" (id {}, p = {:.4}), method {}, on {backend}",
        terminal_safe(&result.target.text),
        result.target.id,
        result.target.prob,
        result.method
    );
    let max = result.scores.iter().fold(0f32, |m, s| m.max(s.abs())).max(f32::MIN_POSITIVE);
    let bar = |score: f32| "█".repeat((score.abs() / max * 30.0).round() as usize);
    match group {
        None => {
            for (i, (token, score)) in result.tokens.iter().zip(&result.scores).enumerate() {
                let error = match &result.standard_errors {
                    Some(errors) => format!(" ± {:<9.6}", errors[i]),
                    None => String::new(),
                };
                println!(
                    "{:>16} {:>7} {:>+12.6}{error} {}",
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

//! `salient components`: which heads, MLPs and layers wrote a prediction (direct logit
//! attribution, the logit lens, the token × layer map), as a table or as JSON.

use crate::attribute::{loaded, progress_context};
use crate::{fail, named, terminal_safe, BackendChoice};
use clap::Args;
use salient::engine::attribution::components::{components, Components};
use salient::engine::runtime::ready::now;
use salient::engine::{Problem, TargetChoice, TargetKind, TargetSpec};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args)]
pub struct ComponentsArgs {
    /// The GGUF model file.
    #[arg(long, value_name = "PATH.gguf")]
    model: PathBuf,
    /// The text whose next token is explained.
    #[arg(long)]
    text: String,
    /// The token to explain, as text that is exactly one token; by default the top prediction.
    #[arg(long, value_name = "TOKEN_TEXT", conflicts_with = "target_id")]
    target: Option<String>,
    /// The token to explain, by id.
    #[arg(long, value_name = "ID")]
    target_id: Option<u32>,
    /// Explain logit(target) − logit(foil), the foil as one token's text.
    #[arg(long, value_name = "TOKEN_TEXT", conflicts_with = "foil_id")]
    foil: Option<String>,
    /// The foil by id.
    #[arg(long, value_name = "ID")]
    foil_id: Option<u32>,
    /// What the token × layer map explains of the target (the components always explain the
    /// logit).
    #[arg(long, value_name = "KIND", default_value = "prob",
          value_parser = named(&TargetKind::ALL, TargetKind::name))]
    target_kind: TargetKind,
    /// How many components the table lists, by |value|.
    #[arg(long, value_name = "N", default_value_t = 12)]
    top: usize,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: ComponentsArgs) -> ExitCode {
    let (model, model_json) = match loaded(&args.model, BackendChoice::Cpu, None) {
        Ok(loaded) => loaded,
        Err(message) => return fail(&message),
    };
    let choice = |text: &Option<String>, id: Option<u32>| match (text, id) {
        (Some(text), _) => Some(TargetChoice::Text(text.clone())),
        (None, Some(id)) => Some(TargetChoice::Id(id)),
        (None, None) => None,
    };
    let spec = TargetSpec {
        token: choice(&args.target, args.target_id).unwrap_or(TargetChoice::TopPrediction),
        kind: args.target_kind,
        foil: choice(&args.foil, args.foil_id),
    };
    let context = progress_context(false);
    let result = now(Problem::new(&model, &args.text, &spec, None, &context))
        .and_then(|problem| components(&problem));
    match result {
        Ok(result) if args.json => {
            let mut json = serde_json::to_value(&result).unwrap_or_default();
            json["model"] = model_json;
            json["target_kind"] = serde_json::json!(args.target_kind);
            println!("{json}");
            ExitCode::SUCCESS
        }
        Ok(result) => {
            print_table(&result, args.top);
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e.to_string()),
    }
}

fn print_table(result: &Components, top: usize) {
    let foil = result.foil.as_ref().map(|f| format!(" − logit(\"{}\")", terminal_safe(&f.text)));
    println!(
        "logit(\"{}\"){} = {:.4} (residual {:.1e})",
        terminal_safe(&result.target.text),
        foil.unwrap_or_default(),
        result.logit,
        result.residual
    );
    let mut order: Vec<usize> = (0..result.components.len()).collect();
    order.sort_by(|&a, &b| {
        result.components[b].value.abs().total_cmp(&result.components[a].value.abs())
    });
    for &i in order.iter().take(top) {
        let c = &result.components[i];
        let place = match (c.layer, c.head) {
            (Some(l), Some(h)) => format!("L{l} H{h} (kv {})", c.kv_head.unwrap_or(0)),
            (Some(l), None) => format!("L{l}"),
            (None, _) => String::new(),
        };
        println!("{:>6} {place:<16} {:>+10.4}", format!("{:?}", c.kind).to_lowercase(), c.value);
    }
    println!("logit lens (p(target), rank, top token):");
    for l in &result.logit_lens {
        let top = l.top.first().map(|p| terminal_safe(&p.text)).unwrap_or_default();
        println!("  L{:<3} {:>8.4} {:>7} {top:?}", l.layer, l.prob, l.rank);
    }
}

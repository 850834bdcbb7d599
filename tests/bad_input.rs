//! Bad input gets a clear message, from the engine and from the CLI (with a non-zero exit).

mod common;
use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{DType, Device, Tensor};
use salient::engine::RunContext;
use salient::engine::{attribute, EngineError, Model, Request, TargetChoice, TargetSpec};
use std::process::Command;

fn load_error(bytes: Vec<u8>) -> String {
    match Model::load(bytes) {
        Ok(_) => panic!("the model loaded"),
        Err(e) => e.to_string(),
    }
}

/// A GGUF file with the given architecture name and one small tensor.
fn tiny_gguf(architecture: &str) -> Vec<u8> {
    let tensor = QTensor::quantize(
        &Tensor::zeros((4, 32), DType::F32, &Device::Cpu).unwrap(),
        GgmlDType::F32,
    )
    .unwrap();
    let arch = Value::String(architecture.into());
    let mut out = std::io::Cursor::new(Vec::new());
    gguf_file::write(
        &mut out,
        &[("general.architecture", &arch)],
        &[("token_embd.weight", &tensor)],
    )
    .unwrap();
    out.into_inner()
}

fn request(text: &str) -> Request {
    Request::new(text, "saliency")
}

#[test]
fn a_file_that_is_not_gguf_says_so() {
    let message = load_error(b"<!DOCTYPE html><html>not a model</html>".to_vec());
    assert!(message.contains("not a GGUF model"), "{message}");
    assert!(message.contains("<!DOCTYP"), "shows what the file starts with: {message}");
    assert!(load_error(Vec::new()).contains("empty"));
}

#[test]
fn a_truncated_gguf_says_so() {
    let mut bytes = common::model_bytes();
    bytes.truncate(4 << 20); // the header survives, the tensors do not
    let message = load_error(bytes);
    assert!(message.contains("damaged or truncated"), "{message}");
}

#[test]
fn an_unsupported_architecture_names_itself() {
    let message = load_error(tiny_gguf("mamba"));
    assert!(message.contains("\"mamba\" is not supported"), "{message}");
    assert!(message.contains("llama"), "lists what is supported: {message}");
}

#[test]
fn empty_too_long_and_bad_targets_are_refused_clearly() {
    let model = common::load_model(DType::F32);
    assert!(matches!(
        attribute(&model, &request(""), &RunContext::default()),
        Err(EngineError::EmptyText)
    ));
    let long = vec!["word"; 300].join(" ");
    let limited = Request { max_tokens: Some(256), ..request(&long) };
    let message = attribute(&model, &limited, &RunContext::default()).unwrap_err().to_string();
    assert!(message.contains("300 tokens long") && message.contains("at most 256"), "{message}");
    let beyond_context = "a ".repeat(model.config().context_length + 1);
    let message = attribute(&model, &request(&beyond_context), &RunContext::default())
        .unwrap_err()
        .to_string();
    assert!(message.contains("this model reads at most 8192"), "{message}");
    let bad_target =
        Request { target: TargetSpec::of(TargetChoice::Id(1 << 20)), ..request("Hello") };
    assert!(attribute(&model, &bad_target, &RunContext::default())
        .unwrap_err()
        .to_string()
        .contains("vocabulary"));
    let bad_method = Request { method: "tea-leaves".into(), ..request("Hello") };
    assert!(attribute(&model, &bad_method, &RunContext::default())
        .unwrap_err()
        .to_string()
        .contains("Unknown method \"tea-leaves\""));
}

fn cli(args: &[&str]) -> (i32, String, String) {
    let out =
        Command::new(env!("CARGO_BIN_EXE_salient")).args(args).output().expect("the CLI runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn cli_prints_the_documented_json() {
    let model = common::model_path();
    let (code, stdout, stderr) =
        cli(&["attribute", "--model", &model, "--text", "The capital of France is", "--json"]);
    assert_eq!(code, 0, "{stderr}");
    let json: serde_json::Value = serde_json::from_str(&stdout).expect("one JSON object");
    assert_eq!(json["target"]["text"], " Paris");
    assert_eq!(json["method"], "saliency");
    assert_eq!(json["tokens"].as_array().unwrap().len(), json["scores"].as_array().unwrap().len());
    assert_eq!(json["tokens"][0]["id"], 504);
    assert_eq!(json["model"]["architecture"], "llama");
    assert_eq!(json["model"]["file"], salient::state::default_model::file_name());
    assert_eq!(json["model"]["sha256"].as_str().unwrap().len(), 64);

    let (code, stdout, _) = cli(&[
        "attribute",
        "--model",
        &model,
        "--text",
        "The capital of France is",
        "--target",
        " London",
        "--json",
    ]);
    assert_eq!(code, 0);
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(json["target"]["text"], " London");
    assert!(json["target"]["prob"].as_f64().unwrap() < 0.1);
}

/// The CLI under a pseudo-terminal (util-linux `script`, part of every Debian system): what the
/// terminal showed, stdout and stderr together.
fn cli_on_a_terminal(args: &[&str]) -> (bool, String) {
    let quoted: Vec<String> = std::iter::once(env!("CARGO_BIN_EXE_salient"))
        .chain(args.iter().copied())
        .map(|arg| format!("'{}'", arg.replace('\'', "'\\''")))
        .collect();
    let out = Command::new("script")
        .args(["-qec", &quoted.join(" "), "/dev/null"])
        .output()
        .expect("script runs");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into())
}

#[test]
fn cli_shows_progress_on_a_terminal_and_nowhere_else() {
    let model = common::model_path();
    let args = [
        "attribute",
        "--model",
        &model,
        "--text",
        "The capital of France is",
        "--method",
        "occlusion",
        "--json",
    ];
    let (ok, shown) = cli_on_a_terminal(&args);
    assert!(ok, "{shown}");
    let percents: Vec<u64> = shown
        .split("\rsalient: ")
        .skip(1)
        .map(|rest| rest.split(" %").next().unwrap().parse().expect("a percent"))
        .collect();
    assert!(
        percents.len() >= 2
            && percents.windows(2).all(|w| w[0] < w[1])
            && percents.iter().all(|p| *p < 100),
        "{shown:?}"
    );
    let after_progress = shown.rsplit("\r\x1b[K").next().unwrap();
    assert!(
        after_progress.trim_start().starts_with('{') && after_progress.contains("\"target\""),
        "the line is cleared before the result: {shown:?}"
    );
    let (code, stdout, stderr) = cli(&args);
    assert_eq!((code, stderr.as_str()), (0, ""), "no progress in a pipe");
    assert!(stdout.starts_with('{'));
}

#[test]
fn cli_fails_clearly_on_bad_input() {
    let model = common::model_path();
    let dir = std::env::temp_dir().join(format!("salient-bad-input-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let not_gguf = dir.join("notes.gguf");
    std::fs::write(&not_gguf, "just some text").unwrap();
    let unsupported = dir.join("mamba.gguf");
    std::fs::write(&unsupported, tiny_gguf("mamba")).unwrap();

    let cases: [(&[&str], &str); 5] = [
        (&["attribute", "--model", not_gguf.to_str().unwrap(), "--text", "Hi"], "not a GGUF model"),
        (
            &["attribute", "--model", unsupported.to_str().unwrap(), "--text", "Hi"],
            "\"mamba\" is not supported",
        ),
        (&["attribute", "--model", &model, "--text", ""], "The text is empty"),
        (
            &[
                "attribute",
                "--model",
                &model,
                "--text",
                "Hi",
                "--target",
                " Parisians and Londoners",
            ],
            "a target must be one token",
        ),
        (
            &["attribute", "--model", "/nonexistent/model.gguf", "--text", "Hi"],
            "cannot read /nonexistent/model.gguf",
        ),
    ];
    for (args, expected) in cases {
        let (code, _, stderr) = cli(args);
        assert_eq!(code, 1, "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
    // Usage errors exit 2 and name the flag; every command has its help.
    for (args, flag) in [
        (&["attribute", "--text", "Hi"][..], "--model"),
        (&["attribute", "--model", &model, "--text", "Hi", "--steps", "many"], "--steps"),
        (&["attribute", "--model", &model, "--text", "Hi", "--method", "tea-leaves"], "--method"),
        (&["attribute", "--model", &model, "--text", "Hi", "--texts", "f.txt"], "--texts"),
        (&["bench", "--model", &model, "--tokens", "0"], "--tokens"),
    ] {
        let (code, _, stderr) = cli(args);
        assert_eq!(code, 2, "usage errors exit 2: {args:?}: {stderr}");
        assert!(stderr.contains(flag), "{args:?}: {stderr}");
    }
    for command in ["attribute", "bench", "methods"] {
        let (code, stdout, _) = cli(&[command, "--help"]);
        assert!(code == 0 && stdout.contains("Usage: salient"), "{command} --help: {stdout}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// A model file names things the CLI prints (its architecture, in the error here): an escape
/// sequence or a text-reordering mark from the file reaches the terminal as `\u{…}`, never as
/// the control character itself.
#[test]
fn cli_never_prints_control_characters_from_a_file() {
    let dir = std::env::temp_dir().join(format!("salient-escape-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("hostile.gguf");
    std::fs::write(&path, tiny_gguf("\u{1b}]0;pwned\u{7}\u{1b}[2J\u{202e}mamba")).unwrap();
    let (code, _, stderr) = cli(&["attribute", "--model", path.to_str().unwrap(), "--text", "Hi"]);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("is not supported"), "{stderr}");
    assert!(!stderr.chars().any(|c| c.is_control() && c != '\n' || c == '\u{202e}'), "{stderr:?}");
    assert!(stderr.contains("\\u{1b}]0;pwned\\u{7}") && stderr.contains("\\u{202e}"), "{stderr:?}");
}

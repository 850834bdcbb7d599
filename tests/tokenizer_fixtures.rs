//! The tokenizer built from GGUF metadata gives the reference ids (fixtures made by an independent
//! Python tokenizer, see fixtures/make_tokenizer_fixtures.py) for every case.

mod common;
use candle_core::DType;

#[derive(serde::Deserialize)]
struct Fixtures {
    model_sha256: String,
    cases: Vec<Case>,
}

#[derive(serde::Deserialize)]
struct Case {
    text: String,
    ids: Vec<u32>,
}

#[test]
fn ids_match_the_reference_tokenizer() {
    let fixtures: Fixtures = serde_json::from_str(include_str!("fixtures/tokenizer_smollm2.json"))
        .expect("fixture file parses");
    assert_eq!(fixtures.model_sha256.len(), 64);
    let model = common::load_model(DType::F32);
    assert!(fixtures.cases.len() >= 25);
    let mut mismatches = Vec::new();
    for case in &fixtures.cases {
        let ids = model.tokenizer.encode(&case.text).expect("encodes");
        if ids != case.ids {
            mismatches.push(format!("{:?}: got {ids:?}, want {:?}", case.text, case.ids));
        }
    }
    assert!(mismatches.is_empty(), "{} mismatches:\n{}", mismatches.len(), mismatches.join("\n"));
}

#[test]
fn token_bytes_reassemble_the_text() {
    let model = common::load_model(DType::F32);
    let text = "Café 👨‍👩‍👧 日本語\n\tx  = 42;";
    let tokens = model.tokenizer.tokenize(text).unwrap();
    let total: usize = tokens.iter().map(|t| t.byte_len).sum();
    assert_eq!(total, text.len(), "every byte of the text is covered once");
    // Emoji split across tokens show as escaped bytes, never as replacement characters.
    assert!(tokens.iter().all(|t| !t.text.contains('\u{FFFD}')));
}

#[test]
fn a_target_must_be_one_token() {
    let model = common::load_model(DType::F32);
    assert_eq!(model.tokenizer.single_token(" Paris").unwrap(), 7042);
    let err = model.tokenizer.single_token(" Parisians and Londoners").unwrap_err().to_string();
    assert!(err.contains("a target must be one token"), "{err}");
}

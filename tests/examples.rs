//! The page's built-in examples on the default model: each caption holds (the target is what the
//! model predicts, over the foil where there is one, and the map's top token is the evidence the
//! caption names).

mod common;

use candle_core::DType;
use salient::engine::{attribute, RunContext};
use salient::state::examples::EXAMPLES;
use salient::state::settings::Settings;

#[test]
fn every_example_shows_what_its_caption_says_on_the_default_model() {
    let model = common::load_model(DType::F32);
    for example in EXAMPLES {
        let mut settings = example.settings(&Settings::default());
        settings.faithfulness = false;
        let a = attribute(&model, &settings.request(), &RunContext::default()).unwrap();
        match &a.foil {
            Some(foil) => {
                assert!(a.target.prob > foil.prob, "{}: {:?} vs {foil:?}", example.name, a.target)
            }
            None => assert_eq!(a.top_k[0].id, a.target.id, "{}: {:?}", example.name, a.top_k),
        }
        // The token of largest |score| (of the text's own tokens) lies in the evidence.
        let mut at = 0;
        let spans: Vec<(usize, usize)> = a
            .tokens
            .iter()
            .map(|t| {
                at += t.byte_len;
                (at - t.byte_len, at)
            })
            .collect();
        let top = (0..a.tokens.len())
            .filter(|&i| a.tokens[i].byte_len > 0 && !a.tokens[i].special)
            .max_by(|&i, &j| a.scores[i].abs().total_cmp(&a.scores[j].abs()))
            .unwrap();
        let (from, to) = example.evidence_span();
        let (s, e) = spans[top];
        assert!(
            s >= from && e <= to,
            "{}: the top token is {:?} at {s}..{e}, the evidence {:?} at {from}..{to}",
            example.name,
            a.tokens[top].text,
            example.evidence
        );
    }
}

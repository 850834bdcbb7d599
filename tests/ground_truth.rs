//! The ground-truth report card: the built-in suite against a real tokenizer, and the whole
//! evaluation on a model whose evidence is known by construction.

mod common;

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{DType, Device, Tensor};
use common::gguf_builder::{rewritten, tiny_llama, TinyConfig};
use salient::engine::evaluation::suite::{Family, Item, Suite};
use salient::engine::evaluation::{evaluate, templates, MethodPlan, Plan};
use salient::engine::runtime::ready::now;
use salient::engine::{Backend, MethodParams, Model, RunContext};

#[test]
fn every_builtin_evidence_span_covers_whole_tokens_of_the_default_model() {
    let model = common::load_model(DType::F32);
    let suite = templates::builtin();
    for item in &suite.items {
        let tokens = model.tokenize_input(&item.text, None).unwrap();
        let evidence =
            item.evidence_tokens(&tokens).unwrap_or_else(|why| panic!("{item:?}: {why}"));
        let last = tokens.len() - 1;
        assert!(!evidence.is_empty() && !evidence.contains(&last), "{item:?}");
    }
}

/// A llama whose blocks write nothing into the residual stream (zero output projections): its
/// prediction depends on the last token alone.
fn last_token_model() -> Model {
    let config = TinyConfig {
        layers: 2,
        width: 16,
        heads: 4,
        kv_heads: 2,
        hidden: 32,
        context_length: 256,
        seed: 11,
    };
    let bytes = rewritten(&tiny_llama(config).bytes, &[], |name, mut values, dims| {
        if name.ends_with("attn_output.weight") || name.ends_with("ffn_down.weight") {
            values.iter_mut().for_each(|v| *v = 0.0);
        }
        let dense = Tensor::from_vec(values, dims, &Device::Cpu).unwrap();
        Some(QTensor::quantize(&dense, GgmlDType::F32).unwrap())
    });
    Model::load_with_dtype(bytes, DType::F32).unwrap()
}

/// Texts of lowercase letters, each explained as its most probable letter against its least
/// probable one; the evidence is the last token, the only one the prediction depends on.
fn last_token_suite(model: &Model) -> Suite {
    let mut rng = common::Rng::new(3);
    let letters: Vec<String> = ('a'..='z').map(|c| c.to_string()).collect();
    let items = (0..40)
        .map(|n| {
            let text: String =
                (0..10).map(|_| letters[(rng.next_f64() * 26.0) as usize].clone()).collect();
            let tokens = model.tokenize_input(&text, None).unwrap();
            let last = tokens.last().unwrap().text.chars().count();
            let chars = text.chars().count();
            let spec = salient::engine::TargetSpec::top();
            let problem = now(salient::engine::Problem::new(
                model,
                &text,
                &spec,
                None,
                &RunContext::default(),
            ))
            .unwrap();
            let id = |letter: &String| model.tokenizer.tokenize_continuation(letter).unwrap()[0].id;
            let prob = |letter: &&String| problem.probs[id(letter) as usize];
            let by_prob = |a: &&String, b: &&String| prob(a).total_cmp(&prob(b));
            let target = letters.iter().max_by(by_prob).unwrap().clone();
            let foil = letters.iter().min_by(by_prob).unwrap().clone();
            Item {
                id: format!("last-{n}"),
                family: Family::Induction,
                text,
                target,
                foil: Some(foil),
                evidence: vec![[chars - last, chars]],
                note: String::new(),
            }
        })
        .collect();
    Suite { items }
}

#[test]
fn gradient_methods_find_evidence_known_by_construction_and_chance_does_not() {
    let model = last_token_model();
    let suite = last_token_suite(&model);
    let methods = ["saliency", "grad_x_input", "integrated_gradients", "smoothgrad", "occlusion"];
    let plan = Plan {
        methods: methods.map(|m| MethodPlan { method: m.into(), per_family: None }).to_vec(),
        params: MethodParams { samples: 4, ..MethodParams::default() },
        seed: 1,
    };
    let report =
        now(evaluate(Backend::Cpu, &model, &suite, &plan, &RunContext::default())).unwrap();
    assert!(report.skipped.is_empty(), "{:?}", report.skipped);
    assert_eq!(report.families[0].scored, 40);
    for row in &report.methods {
        assert_eq!(row.summary.items, 40, "{row:?}");
        assert_eq!(row.summary.hit_rate, 1.0, "{row:?}");
        assert_eq!(row.summary.mean_rank, 1.0, "{row:?}");
        assert!(row.summary.evidence_mass > 0.999, "{row:?}");
    }
    let random = &report.random[0];
    assert!(random.summary.hit_rate < 0.3 && random.summary.ci[1] < 1.0, "{random:?}");
}

#[test]
fn items_the_model_gets_wrong_are_left_out_and_named() {
    let model = last_token_model();
    let mut suite = last_token_suite(&model);
    // The foil and target swapped: the model puts the target below the foil.
    let wrong = &mut suite.items[0];
    let foil = wrong.foil.replace(wrong.target.clone()).unwrap();
    wrong.target = foil;
    let plan = Plan {
        methods: vec![MethodPlan { method: "saliency".into(), per_family: None }],
        params: MethodParams::default(),
        seed: 0,
    };
    let report =
        now(evaluate(Backend::Cpu, &model, &suite, &plan, &RunContext::default())).unwrap();
    let skipped: Vec<&str> = report.skipped.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(skipped, ["last-0"]);
    assert!(report.skipped[0].reason.contains("below the foil"), "{:?}", report.skipped);
    assert_eq!((report.families[0].checked, report.families[0].scored), (40, 39));
    assert!(report.items.iter().all(|i| i.id != "last-0"));
}

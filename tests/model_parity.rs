//! Our differentiable decoder computes the same function as candle's own quantized_llama run on
//! dequantized weights, and predicts sensibly.

mod common;
use candle_core::{DType, Device, Tensor};
use salient::engine::cpu::decoder::{CpuDecoder, Decoder};
use salient::engine::RunContext;
use salient::engine::{attribute, Request};

/// Max |Δlogit| allowed between the two implementations, relative to the largest |logit|.
/// Both compute in f32 on the same dequantized weights but with different op orders
/// (fused vs. composed RMSNorm / RoPE / softmax), so they differ by rounding only.
const RELATIVE_LOGIT_TOLERANCE: f32 = 1e-5;

#[test]
fn logits_match_candle_quantized_llama() {
    // Must be set before candle reads it (once per thread, on first QMatMul).
    std::env::set_var("CANDLE_DEQUANTIZE_ALL", "1");
    let model = common::load_model(DType::F32);
    let bytes = common::model_bytes();
    let mut cursor = std::io::Cursor::new(&bytes);
    let content = candle_core::quantized::gguf_file::Content::read(&mut cursor).unwrap();
    let mut reference = candle_transformers::models::quantized_llama::ModelWeights::from_gguf(
        content,
        &mut cursor,
        &Device::Cpu,
    )
    .unwrap();
    for text in
        ["The capital of France is", "The Eiffel Tower is located in the city of", "1, 2, 3, 4,"]
    {
        let ids = model.tokenizer.encode(text).unwrap();
        let embeds = CpuDecoder::of(&model, &RunContext::default())
            .unwrap()
            .embed(&ids)
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        let ours = CpuDecoder::of(&model, &RunContext::default())
            .unwrap()
            .forward(&embeds)
            .unwrap()
            .last_logits
            .squeeze(0)
            .unwrap();
        let theirs = reference
            .forward(&Tensor::new(ids.as_slice(), &Device::Cpu).unwrap().unsqueeze(0).unwrap(), 0)
            .unwrap()
            .squeeze(0)
            .unwrap();
        let max_diff =
            (&ours - &theirs).unwrap().abs().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap();
        let scale = theirs.abs().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap();
        println!("{text:?}: max |Δlogit| = {max_diff:.2e}, max |logit| = {scale:.1}");
        assert!(
            max_diff <= RELATIVE_LOGIT_TOLERANCE * scale,
            "{text:?}: max |Δlogit| {max_diff} > {RELATIVE_LOGIT_TOLERANCE} × {scale}"
        );
    }
}

#[test]
fn predicts_paris() {
    let model = common::load_model(DType::F32);
    for text in ["The capital of France is", "The Eiffel Tower is located in the city of"] {
        let request = Request::new(text, "saliency");
        let result = attribute(&model, &request, &RunContext::default()).unwrap();
        assert_eq!(result.target.text, " Paris", "{text:?}: top-5 {:?}", result.top_k);
        assert_eq!(result.top_k[0], result.target);
        assert!(result.target.prob > 0.3, "p(Paris) = {}", result.target.prob);
        let probs: Vec<f32> = result.top_k.iter().map(|p| p.prob).collect();
        assert!(probs.windows(2).all(|w| w[0] >= w[1]), "top-k sorted: {probs:?}");
    }
}

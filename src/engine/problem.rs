//! One attribution problem: a text, its input embeddings, the model's prediction and the target
//! token whose probability is explained. Methods ask it for scores and gradients.

use super::arch::DecoderOutput;
use super::error::{EngineError, Result};
use super::model::Model;
use super::tokenizer::Token;
use candle_core::{Tensor, Var, D};
use candle_nn::ops;

/// Which next token to explain.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum TargetChoice {
    /// The model's most likely next token.
    TopPrediction,
    Id(u32),
    /// Text that must be exactly one token (" Paris").
    Text(String),
}

pub struct Problem<'m> {
    pub model: &'m Model,
    pub tokens: Vec<Token>,
    /// `(seq, width)`, tracked for gradients.
    pub embeds: Var,
    pub target: u32,
    /// The forward pass on the unperturbed input, kept (with its graph) for methods that need it.
    pub input_forward: DecoderOutput,
    /// Next-token probabilities for the unperturbed input.
    pub probs: Vec<f32>,
}

impl<'m> Problem<'m> {
    pub fn new(model: &'m Model, text: &str, target: &TargetChoice) -> Result<Self> {
        let tokens = model.tokenize_input(text)?;
        let ids: Vec<u32> = tokens.iter().map(|t| t.id).collect();
        let embeds = Var::from_tensor(&model.decoder.embed(&ids)?)?;
        let input_forward = model.decoder.forward(&embeds.as_tensor().unsqueeze(0)?)?;
        let probs: Vec<f32> = ops::softmax(&input_forward.last_logits.squeeze(0)?.detach(), D::Minus1)?
            .to_dtype(candle_core::DType::F32)?
            .to_vec1()?;
        let target = match target {
            TargetChoice::TopPrediction => top_indices(&probs, 1)[0],
            TargetChoice::Id(id) if (*id as usize) < probs.len() => *id,
            TargetChoice::Id(id) => {
                return Err(EngineError::UnknownTarget(format!("id {id} (the vocabulary has {} tokens)", probs.len())))
            }
            TargetChoice::Text(text) => model.tokenizer.single_token(text)?,
        };
        Ok(Self { model, tokens, embeds, target, input_forward, probs })
    }

    /// The explained quantity for each row of `(batch, vocab)` logits: p(target).
    pub fn target_score(&self, logits: &Tensor) -> Result<Tensor> {
        let probs = ops::softmax(logits, D::Minus1)?;
        Ok(probs.narrow(D::Minus1, self.target as usize, 1)?.squeeze(D::Minus1)?)
    }

    /// ∂ p(target) / ∂ embeds at the input, `(seq, width)`.
    pub fn input_gradient(&self) -> Result<Tensor> {
        let score = self.target_score(&self.input_forward.last_logits)?.sum_all()?;
        let grads = score.backward()?;
        grads
            .get(self.embeds.as_tensor())
            .cloned()
            .ok_or_else(|| EngineError::Internal("the gradient did not reach the input embeddings".into()))
    }

    /// p(target) for a batch of embeddings `(batch, seq, width)`, without gradients.
    pub fn scores(&self, embeds: &Tensor) -> Result<Vec<f64>> {
        let output = self.model.decoder.forward(&embeds.detach())?;
        Ok(self.target_score(&output.last_logits)?.to_dtype(candle_core::DType::F64)?.to_vec1()?)
    }
}

/// Indices of the `k` largest values, largest first.
pub fn top_indices(values: &[f32], k: usize) -> Vec<u32> {
    let mut order: Vec<u32> = (0..values.len() as u32).collect();
    let k = k.min(order.len());
    order.select_nth_unstable_by(k.saturating_sub(1), |a, b| values[*b as usize].total_cmp(&values[*a as usize]));
    order.truncate(k);
    order.sort_by(|a, b| values[*b as usize].total_cmp(&values[*a as usize]));
    order
}

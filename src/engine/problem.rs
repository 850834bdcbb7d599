//! One attribution problem: a token sequence, its input embeddings, the model's prediction and
//! the objective (a scalar of the next-token logits) being explained. Methods ask it for values
//! and gradients of that objective at any embeddings, batched so memory stays bounded.

use super::error::{EngineError, Result};
use super::gradient::{value_and_gradient, Tape};
use super::memory;
use super::methods::Baseline;
use super::model::Model;
use super::objective::{Objective, TargetKind};
use super::tokenizer::Token;
use candle_core::{DType, Tensor, D};
use candle_nn::ops;
use serde::{Deserialize, Serialize};
use std::sync::{Mutex, OnceLock};

/// Which next token to explain.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum TargetChoice {
    /// The model's most likely next token.
    TopPrediction,
    Id(u32),
    /// Text that must be exactly one token (" Paris").
    Text(String),
}

/// The question asked of the model: which token, which quantity, and optionally against which
/// foil token.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TargetSpec {
    pub token: TargetChoice,
    #[serde(default)]
    pub kind: TargetKind,
    #[serde(default)]
    pub foil: Option<TargetChoice>,
}

impl TargetSpec {
    /// p(top prediction), the default question.
    pub fn top() -> Self {
        Self::of(TargetChoice::TopPrediction)
    }

    pub fn of(token: TargetChoice) -> Self {
        Self { token, kind: TargetKind::Prob, foil: None }
    }
}

/// Tokens per batched forward pass without gradients (no graph is kept: only one block's
/// activations are alive at a time). A batch holds at least one sequence whatever its length.
/// Gradient batches are sized by `memory::gradient_batch_rows`.
const VALUE_BATCH_TOKENS: usize = 1024;

pub struct Problem<'m> {
    pub model: &'m Model,
    pub tokens: Vec<Token>,
    /// `(seq, width)`.
    embeds: Tensor,
    pub objective: Objective,
    /// Next-token logits `(1, vocab)` for the unperturbed input.
    input_logits: Tensor,
    /// The input's forward pass, kept for the input gradient until that is taken or another pass
    /// needs the memory (its graph is within `memory::GRAPH_BUDGET_BYTES`).
    input_tape: Mutex<Option<Tape>>,
    /// Every block's attention probabilities on the input, computed when a method first asks.
    attentions: OnceLock<Vec<Tensor>>,
    /// Next-token probabilities for the unperturbed input.
    pub probs: Vec<f32>,
}

impl<'m> Problem<'m> {
    pub fn new(model: &'m Model, text: &str, spec: &TargetSpec, max_tokens: Option<usize>) -> Result<Self> {
        Self::from_tokens(model, model.tokenize_input(text, max_tokens)?, spec)
    }

    /// For token sequences built by the caller (a continuation's prefixes).
    pub fn from_tokens(model: &'m Model, tokens: Vec<Token>, spec: &TargetSpec) -> Result<Self> {
        let ids: Vec<u32> = tokens.iter().map(|t| t.id).collect();
        let embeds = model.decoder.embed(&ids)?;
        let per_segment = memory::layers_per_segment(model.config(), ids.len(), 1);
        let input_tape = Tape::record(&*model.decoder, &embeds.unsqueeze(0)?, per_segment)?;
        let input_logits = input_tape.logits().detach();
        let probs: Vec<f32> = ops::softmax(&input_logits.squeeze(0)?, D::Minus1)?
            .to_dtype(DType::F32)?
            .to_vec1()?;
        if probs.iter().any(|p| !p.is_finite()) {
            // Only damaged weights (or scales) make a finite input give no distribution at all.
            return Err(EngineError::CorruptGguf(
                "the model's next-token probabilities are not numbers (NaN or infinite) on this text, so some weights are not finite".into(),
            ));
        }
        let resolve = |choice: &TargetChoice| -> Result<u32> {
            match choice {
                TargetChoice::TopPrediction => Ok(top_indices(&probs, 1)[0]),
                TargetChoice::Id(id) if (*id as usize) < probs.len() => Ok(*id),
                TargetChoice::Id(id) => {
                    Err(EngineError::UnknownTarget(format!("id {id} (the vocabulary has {} tokens)", probs.len())))
                }
                TargetChoice::Text(text) => model.tokenizer.single_token(text),
            }
        };
        let target = resolve(&spec.token)?;
        let foil = spec.foil.as_ref().map(resolve).transpose()?;
        if foil == Some(target) {
            return Err(EngineError::InvalidRequest("The foil must differ from the target token.".into()));
        }
        let objective = Objective { target, kind: spec.kind, foil };
        let input_tape = Mutex::new(Some(input_tape));
        Ok(Self { model, tokens, embeds, objective, input_logits, input_tape, attentions: OnceLock::new(), probs })
    }

    pub fn target(&self) -> u32 {
        self.objective.target
    }

    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// The input embeddings, `(seq, width)`.
    pub fn input(&self) -> Tensor {
        self.embeds.clone()
    }

    /// Next-token logits `(1, vocab)` at the input.
    pub fn input_logits(&self) -> &Tensor {
        &self.input_logits
    }

    /// Per layer, the attention probabilities `(1, heads, seq, seq)` at the input.
    pub fn attentions(&self) -> Result<&[Tensor]> {
        if let Some(attentions) = self.attentions.get() {
            return Ok(attentions);
        }
        self.release_input_tape();
        let attentions = self.model.decoder.forward(&self.embeds.unsqueeze(0)?)?.attentions;
        Ok(self.attentions.get_or_init(|| attentions))
    }

    /// The explained quantity at the input, f(x).
    pub fn input_value(&self) -> Result<f64> {
        let value = self.objective.score(&self.input_logits)?;
        Ok(value.to_dtype(DType::F64)?.to_vec1::<f64>()?[0])
    }

    /// ∂ f / ∂ embeds at the input, `(seq, width)`. The first call uses the kept forward pass.
    pub fn input_gradient(&self) -> Result<Tensor> {
        let kept = self.input_tape.lock().map_err(|_| EngineError::Internal("a run panicked".into()))?.take();
        let gradient = match kept {
            Some(tape) => {
                let value = self.objective.score(tape.logits())?;
                tape.gradient(&*self.model.decoder, value)?
            }
            None => value_and_gradient(&*self.model.decoder, &self.embeds.unsqueeze(0)?, |l| self.objective.score(l))?.1,
        };
        Ok(gradient.squeeze(0)?)
    }

    /// Frees the input's kept forward pass before another pass needs the memory.
    fn release_input_tape(&self) {
        if let Ok(mut kept) = self.input_tape.lock() {
            kept.take();
        }
    }

    /// The baseline sequence, `(seq, width)`: every position replaced.
    pub fn baseline(&self, baseline: Baseline) -> Result<Tensor> {
        match baseline {
            Baseline::Zero => Ok(self.embeds.zeros_like()?),
            Baseline::Pad => {
                let pad = self.model.tokenizer.pad_token()?;
                Ok(self.model.decoder.embed(&vec![pad; self.len()])?)
            }
        }
    }

    /// f at each of `inputs` (each `(seq, width)`), without gradients, in bounded batches.
    pub fn values(&self, inputs: &[Tensor]) -> Result<Vec<f64>> {
        self.values_of(&self.objective, inputs)
    }

    /// p(target) at each of `inputs`, whatever quantity the objective explains: checks such as
    /// the deletion curve are always read on the probability.
    pub fn probabilities_of_target(&self, inputs: &[Tensor]) -> Result<Vec<f64>> {
        self.values_of(&Objective { target: self.target(), kind: TargetKind::Prob, foil: None }, inputs)
    }

    fn values_of(&self, objective: &Objective, inputs: &[Tensor]) -> Result<Vec<f64>> {
        self.release_input_tape();
        let mut values = Vec::with_capacity(inputs.len());
        for batch in inputs.chunks(self.batch_rows(VALUE_BATCH_TOKENS)) {
            let logits = self.model.decoder.logits(&Tensor::stack(batch, 0)?.detach())?;
            let scores = objective.score(&logits)?;
            values.extend(scores.to_dtype(DType::F64)?.to_vec1::<f64>()?);
        }
        Ok(values)
    }

    /// f and ∂ f / ∂ input at each of `inputs` (each `(seq, width)`), in bounded batches so only
    /// one batch's graph (or part of it) is alive at a time. `visit` gets each input's index,
    /// value and gradient.
    pub fn gradients(&self, inputs: &[Tensor], mut visit: impl FnMut(usize, f64, &Tensor) -> Result<()>) -> Result<()> {
        self.release_input_tape();
        let rows = self.gradient_batch_rows();
        for (b, batch) in inputs.chunks(rows).enumerate() {
            let (scores, gradient) =
                value_and_gradient(&*self.model.decoder, &Tensor::stack(batch, 0)?, |logits| self.objective.score(logits))?;
            let scores = scores.to_dtype(DType::F64)?.to_vec1::<f64>()?;
            for (i, value) in scores.into_iter().enumerate() {
                visit(b * rows + i, value, &gradient.get(i)?)?;
            }
        }
        Ok(())
    }

    /// How many inputs [`Self::gradients`] evaluates per batch. Methods that build their inputs
    /// (path points, noisy copies) pass this many at a time, so they never hold more than a batch.
    pub fn gradient_batch_rows(&self) -> usize {
        memory::gradient_batch_rows(self.model.config(), self.len())
    }

    /// Sequences of this text's length per batch of `budget_tokens` tokens; at least one.
    fn batch_rows(&self, budget_tokens: usize) -> usize {
        (budget_tokens / self.len().max(1)).max(1)
    }
}

/// Indices of the `k` largest values, largest first.
pub fn top_indices(values: &[f32], k: usize) -> Vec<u32> {
    let mut order: Vec<u32> = (0..values.len() as u32).collect();
    let k = k.min(order.len());
    if k == 0 {
        return Vec::new();
    }
    order.select_nth_unstable_by(k - 1, |a, b| values[*b as usize].total_cmp(&values[*a as usize]));
    order.truncate(k);
    order.sort_by(|a, b| values[*b as usize].total_cmp(&values[*a as usize]));
    order
}

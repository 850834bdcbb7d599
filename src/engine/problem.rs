//! One attribution problem: a token sequence, its input embeddings, the model's prediction and
//! the objective (a scalar of the next-token logits) being explained. Methods ask it for values
//! and gradients of that objective at any embeddings, batched so memory stays bounded.

use super::arch::DecoderOutput;
use super::error::{EngineError, Result};
use super::methods::Baseline;
use super::model::Model;
use super::objective::{Objective, TargetKind};
use super::tokenizer::Token;
use candle_core::{DType, Tensor, Var, D};
use candle_nn::ops;
use serde::{Deserialize, Serialize};

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

/// Token budgets per batched forward pass: with gradients every layer's activations are kept, so
/// the budget is smaller. A batch holds at least one sequence whatever its length.
const GRADIENT_BATCH_TOKENS: usize = 256;
const VALUE_BATCH_TOKENS: usize = 1024;

pub struct Problem<'m> {
    pub model: &'m Model,
    pub tokens: Vec<Token>,
    /// `(seq, width)`, tracked for gradients.
    pub embeds: Var,
    pub objective: Objective,
    /// The forward pass on the unperturbed input, kept (with its graph) for methods that need it.
    pub input_forward: DecoderOutput,
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
        let embeds = Var::from_tensor(&model.decoder.embed(&ids)?)?;
        let input_forward = model.decoder.forward(&embeds.as_tensor().unsqueeze(0)?)?;
        let probs: Vec<f32> = ops::softmax(&input_forward.last_logits.squeeze(0)?.detach(), D::Minus1)?
            .to_dtype(DType::F32)?
            .to_vec1()?;
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
        Ok(Self { model, tokens, embeds, objective, input_forward, probs })
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

    /// The input embeddings, `(seq, width)`, detached from the graph.
    pub fn input(&self) -> Tensor {
        self.embeds.as_tensor().detach()
    }

    /// The explained quantity at the input, f(x).
    pub fn input_value(&self) -> Result<f64> {
        let value = self.objective.score(&self.input_forward.last_logits.detach())?;
        Ok(value.to_dtype(DType::F64)?.to_vec1::<f64>()?[0])
    }

    /// ∂ f / ∂ embeds at the input, `(seq, width)`.
    pub fn input_gradient(&self) -> Result<Tensor> {
        let value = self.objective.score(&self.input_forward.last_logits)?.sum_all()?;
        gradient_of(&value, &self.embeds)
    }

    /// The baseline sequence, `(seq, width)`: every position replaced.
    pub fn baseline(&self, baseline: Baseline) -> Result<Tensor> {
        let input = self.embeds.as_tensor();
        match baseline {
            Baseline::Zero => Ok(input.zeros_like()?),
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
        let mut values = Vec::with_capacity(inputs.len());
        for batch in inputs.chunks(self.batch_rows(VALUE_BATCH_TOKENS)) {
            let output = self.model.decoder.forward(&Tensor::stack(batch, 0)?.detach())?;
            let scores = objective.score(&output.last_logits)?;
            values.extend(scores.to_dtype(DType::F64)?.to_vec1::<f64>()?);
        }
        Ok(values)
    }

    /// f and ∂ f / ∂ input at each of `inputs` (each `(seq, width)`), in bounded batches so only
    /// one batch's graph is alive at a time. `visit` gets each input's index, value and gradient.
    pub fn gradients(&self, inputs: &[Tensor], mut visit: impl FnMut(usize, f64, &Tensor) -> Result<()>) -> Result<()> {
        let rows = self.batch_rows(GRADIENT_BATCH_TOKENS);
        for (b, batch) in inputs.chunks(rows).enumerate() {
            let var = Var::from_tensor(&Tensor::stack(batch, 0)?.detach())?;
            let output = self.model.decoder.forward(var.as_tensor())?;
            let scores = self.objective.score(&output.last_logits)?;
            let gradient = gradient_of(&scores.sum_all()?, &var)?;
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
        gradient_batch_rows(self.len())
    }

    fn batch_rows(&self, budget_tokens: usize) -> usize {
        rows_within(budget_tokens, self.len())
    }
}

/// [`Problem::gradient_batch_rows`] for a text of `tokens` tokens.
pub fn gradient_batch_rows(tokens: usize) -> usize {
    rows_within(GRADIENT_BATCH_TOKENS, tokens)
}

/// Sequences of `tokens` tokens that fit a budget of `budget_tokens`; at least one.
fn rows_within(budget_tokens: usize, tokens: usize) -> usize {
    (budget_tokens / tokens.max(1)).max(1)
}

fn gradient_of(value: &Tensor, wrt: &Var) -> Result<Tensor> {
    value
        .backward()?
        .get(wrt.as_tensor())
        .cloned()
        .ok_or_else(|| EngineError::Internal("the gradient did not reach the input embeddings".into()))
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

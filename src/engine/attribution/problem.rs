//! One attribution problem: a token sequence, its input embeddings, the model's prediction and
//! the objective (a scalar of the next-token logits) being explained. Methods ask it for values
//! and gradients of that objective at any embeddings, batched so memory stays bounded.
//!
//! This is the seam between the attribution methods and the backends: every pass a method asks
//! for is an `async` call here, since a backend may have to wait for its results (the GPU's reads
//! complete only once a browser's worker is idle). The CPU's passes never wait.

use crate::engine::attribution::objective::{Objective, TargetKind};
use crate::engine::cpu::decoder::{CpuDecoder, Decoder};
use crate::engine::cpu::gradient::{value_and_gradient, Tape};
use crate::engine::cpu::layers::KeyValues;
use crate::engine::cpu::memory::{gradient_batch_rows, layers_per_segment};
use crate::engine::error::{EngineError, Result};
#[cfg(gpu)]
use crate::engine::gpu::{GpuDecoder, GpuPass, TextKeys};
use crate::engine::model::tokenizer::Token;
use crate::engine::model::Model;
use crate::engine::runtime::context::RunContext;
use crate::engine::runtime::progress;
use candle_core::{DType, Tensor, D};
use candle_nn::ops;
use serde::{Deserialize, Serialize};
use std::ops::Range;
#[cfg(gpu)]
use std::sync::Arc;
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
/// Gradient batches are sized by `cpu::memory::gradient_batch_rows`.
const VALUE_BATCH_TOKENS: usize = 1024;

/// Below this many tokens a batch of values takes the next input whatever it recomputes: each
/// pass reads every weight once, which small batches do not amortise.
const VALUE_BATCH_MIN_TOKENS: usize = 256;

/// Past [`VALUE_BATCH_MIN_TOKENS`], a batch takes the next input only while the positions it
/// recomputes although they are unchanged (those its inputs share with the text beyond the prefix
/// the whole batch shares) stay within this fraction of its tokens.
const VALUE_BATCH_RECOMPUTED: f64 = 0.0625;

/// Where a problem's passes compute.
#[derive(Clone)]
pub enum Backend {
    Cpu,
    /// A GPU decoder of the same model (`GpuDecoder::new` on its architecture).
    #[cfg(gpu)]
    Gpu(Arc<GpuDecoder>),
}

impl Backend {
    pub fn kind(&self) -> BackendKind {
        match self {
            Backend::Cpu => BackendKind::Cpu,
            #[cfg(gpu)]
            Backend::Gpu(_) => BackendKind::Gpu,
        }
    }

    /// "cpu" or "gpu", as links, exports and the CLI's JSON name it.
    pub fn name(&self) -> &'static str {
        self.kind().name()
    }
}

/// Which backend computed a result: what links and exports record of it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    #[default]
    Cpu,
    Gpu,
}

impl BackendKind {
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Cpu => "cpu",
            BackendKind::Gpu => "gpu",
        }
    }

    pub fn is_cpu(&self) -> bool {
        *self == BackendKind::Cpu
    }
}

/// The GPU's share of a problem: its decoder, the input's forward pass kept for the input
/// gradient, and the input's keys and values once a continuing pass needs them.
#[cfg(gpu)]
struct OnGpu {
    decoder: Arc<GpuDecoder>,
    input_pass: Mutex<Option<GpuPass>>,
    text_keys: OnceLock<TextKeys>,
}

pub struct Problem<'m> {
    pub model: &'m Model,
    /// The model's decoder on the CPU: its embeddings, and every pass unless the GPU computes.
    cpu: CpuDecoder,
    #[cfg(gpu)]
    gpu: Option<OnGpu>,
    pub tokens: Vec<Token>,
    /// `(seq, width)`.
    embeds: Tensor,
    pub objective: Objective,
    /// Next-token logits `(1, vocab)` for the unperturbed input.
    input_logits: Tensor,
    /// The input's forward pass, kept for the input gradient until that is taken or another pass
    /// needs the memory (its graph is within the run's `GraphBudget`).
    input_tape: Mutex<Option<Tape>>,
    /// Every block's attention probabilities on the input, computed when a method first asks.
    attentions: OnceLock<Vec<Tensor>>,
    /// Every block's keys and values on the input, computed when values are first asked at
    /// inputs that share a prefix with it.
    keys_values: OnceLock<Vec<KeyValues>>,
    /// Next-token probabilities for the unperturbed input.
    pub probs: Vec<f32>,
}

impl<'m> Problem<'m> {
    /// The question of `spec` about `text`, for the run `context` (the model's forward pass), on
    /// the CPU.
    pub async fn new(
        model: &'m Model,
        text: &str,
        spec: &TargetSpec,
        max_tokens: Option<usize>,
        context: &RunContext,
    ) -> Result<Self> {
        let tokens = model.tokenize_input(text, max_tokens)?;
        Self::on(Backend::Cpu, model, tokens, spec, context).await
    }

    /// For token sequences built by the caller (a continuation's prefixes), on the CPU.
    pub async fn from_tokens(
        model: &'m Model,
        tokens: Vec<Token>,
        spec: &TargetSpec,
        context: &RunContext,
    ) -> Result<Self> {
        Self::on(Backend::Cpu, model, tokens, spec, context).await
    }

    /// The question of `spec` about `tokens`, its passes computed on `device`.
    pub async fn on(
        backend: Backend,
        model: &'m Model,
        tokens: Vec<Token>,
        spec: &TargetSpec,
        context: &RunContext,
    ) -> Result<Self> {
        let ids: Vec<u32> = tokens.iter().map(|t| t.id).collect();
        let cpu = CpuDecoder::of(model, context)?;
        let embeds = cpu.embed(&ids)?;
        #[cfg(gpu)]
        let mut gpu = None;
        let (input_logits, input_tape) = match backend {
            Backend::Cpu => {
                let per_segment =
                    layers_per_segment(model.config(), ids.len(), 1, context.graph_budget);
                let tape = Tape::record(&cpu, &embeds.unsqueeze(0)?, per_segment)?;
                (tape.logits().detach(), Some(tape))
            }
            #[cfg(gpu)]
            Backend::Gpu(decoder) => {
                if model.dtype != DType::F32 {
                    return Err(EngineError::Gpu("the GPU computes in f32 only".into()));
                }
                let flat = embeds.flatten_all()?.to_vec1::<f32>()?;
                let (logits, pass) = decoder.forward(context, &flat, 1, ids.len()).await?;
                let logits = Tensor::from_vec(logits, (1, model.config().vocab), embeds.device())?;
                let input_pass = Mutex::new(Some(pass));
                gpu = Some(OnGpu { decoder, input_pass, text_keys: OnceLock::new() });
                (logits, None)
            }
        };
        let probs: Vec<f32> =
            ops::softmax(&input_logits.squeeze(0)?, D::Minus1)?.to_dtype(DType::F32)?.to_vec1()?;
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
                TargetChoice::Id(id) => Err(EngineError::UnknownTarget(format!(
                    "id {id} (the vocabulary has {} tokens)",
                    probs.len()
                ))),
                TargetChoice::Text(text) => model.tokenizer.single_token(text),
            }
        };
        let target = resolve(&spec.token)?;
        let foil = spec.foil.as_ref().map(resolve).transpose()?;
        if foil == Some(target) {
            return Err(EngineError::InvalidRequest(
                "The foil must differ from the target token.".into(),
            ));
        }
        let objective = Objective { target, kind: spec.kind, foil };
        let input_tape = Mutex::new(input_tape);
        let (attentions, keys_values) = (OnceLock::new(), OnceLock::new());
        Ok(Self {
            model,
            cpu,
            #[cfg(gpu)]
            gpu,
            tokens,
            embeds,
            objective,
            input_logits,
            input_tape,
            attentions,
            keys_values,
            probs,
        })
    }

    /// The run this problem computes for.
    pub fn context(&self) -> &RunContext {
        self.cpu.context()
    }

    /// Where its passes compute.
    pub fn backend(&self) -> Backend {
        #[cfg(gpu)]
        if let Some(gpu) = &self.gpu {
            return Backend::Gpu(gpu.decoder.clone());
        }
        Backend::Cpu
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
    pub async fn attentions(&self) -> Result<&[Tensor]> {
        if let Some(attentions) = self.attentions.get() {
            return Ok(attentions);
        }
        self.release_input_tape();
        #[cfg(gpu)]
        if let Some(gpu) = &self.gpu {
            let (heads, seq) = (self.model.config().heads, self.len());
            let maps =
                gpu.decoder.attentions(self.context(), &self.flat(&self.embeds)?, seq).await?;
            let attentions = maps
                .into_iter()
                .map(|map| Ok(Tensor::from_vec(map, (1, heads, seq, seq), self.embeds.device())?))
                .collect::<Result<Vec<_>>>()?;
            return Ok(self.attentions.get_or_init(|| attentions));
        }
        let attentions = self.cpu.forward(&self.embeds.unsqueeze(0)?)?.attentions;
        Ok(self.attentions.get_or_init(|| attentions))
    }

    /// The explained quantity at the input, f(x).
    pub fn input_value(&self) -> Result<f64> {
        let value = self.objective.score(&self.input_logits)?;
        Ok(value.to_dtype(DType::F64)?.to_vec1::<f64>()?[0])
    }

    /// ∂ f / ∂ embeds at the input, `(seq, width)`. The first call uses the kept forward pass.
    pub async fn input_gradient(&self) -> Result<Tensor> {
        #[cfg(gpu)]
        if let Some(gpu) = &self.gpu {
            let kept = gpu
                .input_pass
                .lock()
                .map_err(|_| EngineError::Internal("a run panicked".into()))?
                .take();
            let (seq, context) = (self.len(), self.context());
            let pass = match kept {
                Some(pass) => pass,
                None => gpu.decoder.forward(context, &self.flat(&self.embeds)?, 1, seq).await?.1,
            };
            let (_, d_logits) = self.objective_gradient(&self.objective, &self.input_logits)?;
            let gradient = gpu.decoder.gradient(context, pass, &d_logits).await?;
            return Ok(Tensor::from_vec(gradient, self.embeds.shape(), self.embeds.device())?);
        }
        let kept = self
            .input_tape
            .lock()
            .map_err(|_| EngineError::Internal("a run panicked".into()))?
            .take();
        let gradient = match kept {
            Some(tape) => {
                let value = self.objective.score(tape.logits())?;
                tape.gradient(&self.cpu, value)?
            }
            None => {
                let embeds = self.embeds.unsqueeze(0)?;
                value_and_gradient(&self.cpu, &embeds, self.context().graph_budget, |l| {
                    self.objective.score(l)
                })?
                .1
            }
        };
        Ok(gradient.squeeze(0)?)
    }

    /// Frees the input's kept forward pass before another pass needs the memory.
    fn release_input_tape(&self) {
        if let Ok(mut kept) = self.input_tape.lock() {
            kept.take();
        }
        #[cfg(gpu)]
        if let Some(Ok(mut kept)) = self.gpu.as_ref().map(|gpu| gpu.input_pass.lock()) {
            kept.take();
        }
    }

    /// `inputs`' values in one row-major list, as the GPU takes them.
    #[cfg(gpu)]
    fn flat(&self, inputs: &Tensor) -> Result<Vec<f32>> {
        Ok(inputs.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?)
    }

    /// `objective` at each row of `logits` `(batch, vocab)`, and its gradient with respect to
    /// them, row-major: what a GPU backward pass starts from. The objective is computed as on
    /// the CPU, through candle.
    #[cfg(gpu)]
    fn objective_gradient(
        &self,
        objective: &Objective,
        logits: &Tensor,
    ) -> Result<(Vec<f64>, Vec<f32>)> {
        let logits = candle_core::Var::from_tensor(&logits.to_dtype(DType::F32)?)?;
        let scores = objective.score(logits.as_tensor())?;
        let gradient = scores.sum_all()?.backward()?;
        let d_logits = gradient.get(logits.as_tensor()).ok_or_else(|| {
            EngineError::Internal("the objective's gradient did not reach the logits".into())
        })?;
        Ok((
            scores.to_dtype(DType::F64)?.to_vec1::<f64>()?,
            d_logits.flatten_all()?.to_vec1::<f32>()?,
        ))
    }

    /// The baseline sequence, `(seq, width)`: every position replaced.
    pub fn baseline(&self, baseline: Baseline) -> Result<Tensor> {
        match baseline {
            Baseline::Zero => Ok(self.embeds.zeros_like()?),
            Baseline::Pad => {
                let pad = self.model.tokenizer.pad_token()?;
                Ok(self.cpu.embed(&vec![pad; self.len()])?)
            }
        }
    }

    /// f at each of `inputs` (each `(seq, width)`), without gradients, in bounded batches.
    pub async fn values(&self, inputs: &[Tensor]) -> Result<Vec<f64>> {
        self.values_of(&self.objective, inputs).await
    }

    /// p(target) at each of `inputs`, whatever quantity the objective explains: checks such as
    /// the deletion curve are always read on the probability.
    pub async fn probabilities_of_target(&self, inputs: &[Tensor]) -> Result<Vec<f64>> {
        self.values_of(
            &Objective { target: self.target(), kind: TargetKind::Prob, foil: None },
            inputs,
        )
        .await
    }

    /// Inputs that equal the text in their first positions continue its keys and values there
    /// instead of computing those positions again: batched by the prefix they share.
    async fn values_of(&self, objective: &Objective, inputs: &[Tensor]) -> Result<Vec<f64>> {
        self.release_input_tape();
        let shared =
            inputs.iter().map(|input| self.shared_positions(input)).collect::<Result<Vec<_>>>()?;
        let mut order: Vec<usize> = (0..inputs.len()).collect();
        order.sort_by_key(|&i| shared[i]);
        let sorted_shared: Vec<usize> = order.iter().map(|&i| shared[i]).collect();
        let mut values = vec![0.0; inputs.len()];
        for batch in prefix_batches(&sorted_shared, self.len()) {
            let start = sorted_shared[batch.start];
            let members = &order[batch];
            let rest = members
                .iter()
                .map(|&i| inputs[i].narrow(0, start, self.len() - start))
                .collect::<candle_core::Result<Vec<_>>>()?;
            let logits = self.batch_logits(&Tensor::stack(&rest, 0)?.detach(), start).await?;
            let scores = objective.score(&logits)?.to_dtype(DType::F64)?.to_vec1::<f64>()?;
            for (&i, value) in members.iter().zip(scores) {
                values[i] = value;
            }
        }
        Ok(values)
    }

    /// Next-token logits `(batch, vocab)` of `rest` `(batch, seq − start, width)`: inputs that
    /// equal the text in its first `start` positions, which continue its keys and values there.
    async fn batch_logits(&self, rest: &Tensor, start: usize) -> Result<Tensor> {
        #[cfg(gpu)]
        if let Some(gpu) = &self.gpu {
            let (batch, seq) = (rest.dim(0)?, rest.dim(1)?);
            let past = match start {
                0 => None,
                _ => {
                    if gpu.text_keys.get().is_none() {
                        let flat = self.flat(&self.embeds)?;
                        let keys = gpu.decoder.text_keys(self.context(), &flat, self.len()).await?;
                        let _ = gpu.text_keys.set(keys);
                    }
                    gpu.text_keys.get().map(|keys| (keys, start))
                }
            };
            let logits =
                gpu.decoder.logits(self.context(), &self.flat(rest)?, batch, seq, past).await?;
            let vocab = self.model.config().vocab;
            return Ok(Tensor::from_vec(logits, (batch, vocab), rest.device())?);
        }
        let past = match start {
            0 => None,
            _ => Some(
                self.input_keys_values()?
                    .iter()
                    .map(|kv| kv.prefix(start))
                    .collect::<Result<Vec<_>>>()?,
            ),
        };
        self.cpu.logits(rest, past.as_deref())
    }

    /// How many leading positions of `input` `(seq, width)` equal the text's embeddings, short of
    /// the last position (whose state gives the logits, so it is always computed).
    fn shared_positions(&self, input: &Tensor) -> Result<usize> {
        let differs = input.ne(&self.embeds)?.max(1)?.to_vec1::<u8>()?;
        Ok(differs
            .iter()
            .position(|&d| d != 0)
            .unwrap_or(differs.len())
            .min(self.len().saturating_sub(1)))
    }

    fn input_keys_values(&self) -> Result<&[KeyValues]> {
        if let Some(keys_values) = self.keys_values.get() {
            return Ok(keys_values);
        }
        let keys_values = self.cpu.keys_values(&self.embeds.unsqueeze(0)?)?;
        Ok(self.keys_values.get_or_init(|| keys_values))
    }

    /// f and ∂ f / ∂ input at each of `inputs` (each `(seq, width)`), in bounded batches so only
    /// one batch's graph (or part of it) is alive at a time. `visit` gets each input's index,
    /// value and gradient.
    pub async fn gradients(
        &self,
        inputs: &[Tensor],
        mut visit: impl FnMut(usize, f64, &Tensor) -> Result<()>,
    ) -> Result<()> {
        self.release_input_tape();
        let rows = self.gradient_batch_rows();
        #[cfg(gpu)]
        if let Some(gpu) = &self.gpu {
            let (seq, context) = (self.len(), self.context());
            for (b, batch) in inputs.chunks(rows).enumerate() {
                let stacked = Tensor::stack(batch, 0)?;
                let flat = self.flat(&stacked)?;
                let (logits, pass) = gpu.decoder.forward(context, &flat, batch.len(), seq).await?;
                let vocab = self.model.config().vocab;
                let logits = Tensor::from_vec(logits, (batch.len(), vocab), stacked.device())?;
                let (values, d_logits) = self.objective_gradient(&self.objective, &logits)?;
                let gradient = gpu.decoder.gradient(context, pass, &d_logits).await?;
                let gradient = Tensor::from_vec(gradient, stacked.shape(), stacked.device())?;
                for (i, value) in values.into_iter().enumerate() {
                    visit(b * rows + i, value, &gradient.get(i)?)?;
                }
            }
            return Ok(());
        }
        for (b, batch) in inputs.chunks(rows).enumerate() {
            let (scores, gradient) = value_and_gradient(
                &self.cpu,
                &Tensor::stack(batch, 0)?,
                self.context().graph_budget,
                |logits| self.objective.score(logits),
            )?;
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
        #[cfg(gpu)]
        if let Some(gpu) = &self.gpu {
            return gpu.decoder.gradient_batch_rows(self.len());
        }
        gradient_batch_rows(self.model.config(), self.len(), self.context().graph_budget)
    }
}

/// What replaces a token's embedding where a method needs "no information" (integrated
/// gradients' path start, occlusion, the deletion curve).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Baseline {
    /// The embedding of the model's padding token (or end-of-text when it has none): a real
    /// input the model has seen, so the path from it stays on the model's usual scale.
    #[default]
    Pad,
    /// The zero vector. Near it f is steep (RMSNorm of a small x is about x / √eps), which the
    /// adaptive path rule of integrated gradients resolves by splitting its intervals there.
    Zero,
}

impl Baseline {
    pub const ALL: [Baseline; 2] = [Baseline::Pad, Baseline::Zero];

    pub fn name(self) -> &'static str {
        match self {
            Baseline::Pad => "pad",
            Baseline::Zero => "zero",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|b| b.name() == name)
    }
}

/// A token as a next-token prediction, with its probability.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    pub id: u32,
    pub text: String,
    pub prob: f32,
}

impl Prediction {
    /// Token `id` as a next-token prediction of `problem`'s input.
    pub fn of(problem: &Problem<'_>, id: u32) -> Result<Self> {
        Ok(Self {
            id,
            text: problem.model.tokenizer.token(id)?.text,
            prob: problem.probs[id as usize],
        })
    }
}

/// The work (in [`progress`] units) of calls of [`Problem::values`] on a fresh problem of `seq`
/// tokens, each call given by how many positions its inputs share with the text (ascending): their
/// batches, and the text's keys and values (one forward pass, the first time a batch continues
/// them).
pub fn values_work(calls: impl IntoIterator<Item = Vec<usize>>, seq: usize) -> u64 {
    let (mut work, mut keys_values) = (0, false);
    for shared in calls {
        for batch in prefix_batches(&shared, seq) {
            let start = shared[batch.start];
            work += progress::forward(batch.len(), seq - start);
            keys_values |= start > 0;
        }
    }
    work + if keys_values { progress::forward(1, seq) } else { 0 }
}

/// Batches of inputs sorted by how many positions they share with the text (`shared`, ascending),
/// for texts of `seq` tokens: runs of consecutive inputs, each computed from the prefix its first
/// input shares, of at most [`VALUE_BATCH_TOKENS`] tokens (at least one input) and within
/// [`VALUE_BATCH_RECOMPUTED`] recomputed positions once past [`VALUE_BATCH_MIN_TOKENS`].
fn prefix_batches(shared: &[usize], seq: usize) -> Vec<Range<usize>> {
    let mut batches = Vec::new();
    let mut first = 0;
    while first < shared.len() {
        let tokens_each = seq - shared[first];
        let (mut end, mut recomputed) = (first + 1, 0);
        while end < shared.len() {
            let tokens = (end + 1 - first) * tokens_each;
            let more = recomputed + shared[end] - shared[first];
            let within = tokens <= VALUE_BATCH_MIN_TOKENS
                || more as f64 <= VALUE_BATCH_RECOMPUTED * tokens as f64;
            if tokens > VALUE_BATCH_TOKENS || !within {
                break;
            }
            (end, recomputed) = (end + 1, more);
        }
        batches.push(first..end);
        first = end;
    }
    batches
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Tokens a batch computes: each input from the batch's shared prefix on.
    fn batch_tokens(shared: &[usize], seq: usize, batch: &Range<usize>) -> usize {
        batch.len() * (seq - shared[batch.start])
    }

    #[test]
    fn prefix_batches_cover_every_input_once_within_the_budget() {
        for (shared, seq) in [
            ((0..64).collect::<Vec<_>>(), 64),
            (vec![0; 40], 64),
            (vec![5; 3], 600),
            ((0..512).map(|i| i / 3).collect(), 512),
            (vec![0, 0, 1, 7, 7, 30, 31], 32),
            (vec![], 10),
        ] {
            let batches = prefix_batches(&shared, seq);
            let covered: Vec<usize> = batches.iter().flat_map(|b| b.clone()).collect();
            assert_eq!(covered, (0..shared.len()).collect::<Vec<_>>(), "{shared:?}");
            for batch in &batches {
                assert!(!batch.is_empty());
                assert!(
                    batch.len() == 1 || batch_tokens(&shared, seq, batch) <= VALUE_BATCH_TOKENS,
                    "{batch:?} of {shared:?}"
                );
            }
        }
    }

    /// Leave-one-out on 64 tokens: input i shares i positions. Reusing prefixes computes well
    /// under the 64 × 64 tokens of whole passes, in few batches.
    #[test]
    fn occluded_inputs_skip_most_unchanged_positions() {
        let shared: Vec<usize> = (0..64).collect();
        let batches = prefix_batches(&shared, 64);
        let tokens: usize = batches.iter().map(|b| batch_tokens(&shared, 64, b)).sum();
        assert!(tokens < 64 * 64 * 2 / 3, "{tokens} tokens in {batches:?}");
        assert!(batches.len() <= 8, "{batches:?}");
        // Identical prefixes recompute nothing: only the budget splits them.
        assert_eq!(prefix_batches(&[3; 40], 67), vec![0..16, 16..32, 32..40]);
    }
}

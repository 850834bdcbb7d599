//! The GPU decoder: an [`Architecture`] on the device, computing what the CPU decoder computes
//! (the same pre-norm block for every family, its kinds picked by the architecture), and the
//! input gradient by an explicit backward pass. A forward pass keeps each block's input; the
//! backward pass runs the blocks from the last to the first, each recomputed from its input with
//! its intermediates, then taken back: one more forward pass of work, and only one block's
//! activations alive at a time.
//!
//! The queries, keys and values of a block lie side by side in one buffer (`(rows, width + 2 ·
//! kv width)`), whether the file has one fused projection or three; the gated MLP's gate and up
//! projections likewise. A pass may continue a text's keys and values ([`TextKeys`]): inputs that
//! equal the text in their first positions compute only the rest, as on the CPU.

use crate::engine::error::{EngineError, Result};
use crate::engine::gpu::kernels::{GpuNorm, Heads, Part};
use crate::engine::gpu::weights::GpuMatrix;
use crate::engine::gpu::{AdapterSummary, Buf, Gpu, Step};
use crate::engine::model::arch::{
    Architecture, DecoderConfig, Linear, MlpKind, Norm, NormKind, Qkv, RopeLayout, RopeSpec,
};
use crate::engine::model::weights::QuantizedMatrix;
use crate::engine::runtime::context::RunContext;
use crate::engine::runtime::progress;

/// The most device memory one gradient batch's activations may take: the stored block inputs,
/// and one block's intermediates and gradients. WebGPU says nothing of free memory; this fits
/// the GPUs of laptops, and a batch of one sequence is taken whatever it needs.
const GRADIENT_BYTES: f64 = 1024.0 * 1024.0 * 1024.0;

struct GpuLinear {
    w: GpuMatrix,
    bias: Option<Buf>,
}

struct GpuBlock {
    attn_norm: GpuNorm,
    /// One fused projection, or the query, key and value projections, each with the column of
    /// the side-by-side buffer its output starts at.
    qkv: Vec<(GpuLinear, usize)>,
    o: GpuLinear,
    ffn_norm: GpuNorm,
    gate: Option<GpuLinear>,
    up: GpuLinear,
    down: GpuLinear,
}

pub struct GpuDecoder {
    gpu: Gpu,
    config: DecoderConfig,
    rope: Option<RopeSpec>,
    mlp: MlpKind,
    /// Learned positions (GPT-2), added on the CPU: attributions are to the token embeddings.
    positions: Option<QuantizedMatrix>,
    blocks: Vec<GpuBlock>,
    output_norm: GpuNorm,
    output: GpuLinear,
}

/// A forward pass kept for its gradient: every block's input, and the last positions' state.
pub struct GpuPass {
    batch: usize,
    seq: usize,
    inputs: Vec<Buf>,
    last: Buf,
}

/// A text's queries, keys and values in every block (batch 1): the prefix later passes continue.
pub struct TextKeys {
    qkv: Vec<Buf>,
    seq: usize,
}

impl TextKeys {
    pub fn positions(&self) -> usize {
        self.seq
    }
}

/// One block's intermediates: what its backward pass reads.
struct BlockActs {
    qkv: Buf,
    probs: Buf,
    x2: Buf,
    /// The gated MLP's gate and up projections side by side, or GELU's input.
    mid: Buf,
    out: Buf,
}

/// What a block's forward pass keeps past its step, besides its output.
#[derive(Clone, Copy, PartialEq)]
enum Keep {
    Nothing,
    /// Every block's input (the pass is kept for a gradient).
    Inputs,
    Probs,
    Keys,
    /// Not even the output: a block recomputed for its backward pass.
    Recompute,
}

/// What a pass computed.
struct Ran {
    logits: Buf,
    inputs: Vec<Buf>,
    kept: Vec<Buf>,
    last: Buf,
}

impl GpuDecoder {
    /// `arch` on the best GPU there is: its weights uploaded, in their file's encoding where the
    /// kernels decode it.
    pub async fn new(arch: &Architecture) -> Result<Self> {
        Self::on(Gpu::new().await?, arch)
    }

    /// `arch` on `gpu`.
    pub fn on(gpu: Gpu, arch: &Architecture) -> Result<Self> {
        let vector = |m: &QuantizedMatrix| gpu.upload(&m.dequantize_rows_f32(0..m.rows())?);
        let norm = |n: &Norm| -> Result<GpuNorm> {
            let eps = match arch.norm {
                NormKind::Rms { eps } | NormKind::Layer { eps } => eps as f32,
            };
            let bias = match arch.norm {
                NormKind::Rms { .. } => None,
                NormKind::Layer { .. } => Some(vector(n.bias.as_ref().ok_or_else(|| {
                    EngineError::Internal("a LayerNorm without its bias".into())
                })?)?),
            };
            Ok(GpuNorm { weight: vector(&n.weight)?, bias, eps })
        };
        let linear = |l: &Linear| -> Result<GpuLinear> {
            Ok(GpuLinear {
                w: GpuMatrix::upload(&gpu, &l.weight)?,
                bias: l.bias.as_ref().map(vector).transpose()?,
            })
        };
        let (width, kv) = (arch.config.width, arch.config.kv_heads * arch.config.head_dim());
        let blocks = arch
            .blocks
            .iter()
            .map(|b| {
                Ok(GpuBlock {
                    attn_norm: norm(&b.attn_norm)?,
                    qkv: match &b.qkv {
                        Qkv::Separate { q, k, v } => {
                            vec![(linear(q)?, 0), (linear(k)?, width), (linear(v)?, width + kv)]
                        }
                        Qkv::Fused(qkv) => vec![(linear(qkv)?, 0)],
                    },
                    o: linear(&b.o)?,
                    ffn_norm: norm(&b.ffn_norm)?,
                    gate: b.gate.as_ref().map(linear).transpose()?,
                    up: linear(&b.up)?,
                    down: linear(&b.down)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        if arch.mlp == MlpKind::SwiGlu && blocks.iter().any(|b| b.gate.is_none()) {
            return Err(EngineError::Internal("a SwiGLU MLP without its gate".into()));
        }
        let output_norm = norm(&arch.output_norm)?;
        let output = GpuLinear { w: GpuMatrix::upload(&gpu, &arch.output)?, bias: None };
        Ok(Self {
            config: arch.config.clone(),
            rope: arch.rope.clone(),
            mlp: arch.mlp,
            positions: arch.positions.clone(),
            blocks,
            output_norm,
            output,
            gpu,
        })
    }

    pub fn adapter(&self) -> &AdapterSummary {
        &self.gpu.adapter
    }

    /// Compiles every kernel a run uses, on passes over two zero inputs: a front end does this
    /// once after loading, so that the first run's time is the run's own. (Kernels are compiled
    /// per encoding, never per shape.)
    pub async fn warm_up(&self, context: &RunContext) -> Result<()> {
        let (width, vocab) = (self.config.width, self.config.vocab);
        let x = vec![0f32; 2 * width];
        let (_, pass) = self.forward(context, &x, 1, 2).await?;
        self.gradient(context, pass, &vec![0f32; vocab]).await?;
        self.attentions(context, &x, 2).await?;
        let keys = self.text_keys(context, &x, 2).await?;
        self.logits(context, &x[..width], 1, 1, Some((&keys, 2))).await?;
        Ok(())
    }

    /// Destroys the device, as a lost one is: the next pass fails. For the tests of the front
    /// ends' fallback to the CPU.
    pub fn lose_device(&self) {
        self.gpu.lose();
    }

    pub fn config(&self) -> &DecoderConfig {
        &self.config
    }

    fn qkv_width(&self) -> usize {
        self.config.width + 2 * self.config.kv_heads * self.config.head_dim()
    }

    /// Device values one sequence of `seq` tokens takes in a gradient batch: its stored block
    /// inputs, and one block's intermediates and their gradients.
    fn gradient_values_per_sequence(&self, seq: usize) -> f64 {
        let c = &self.config;
        let (w, qkv, f) = (c.width as f64, self.qkv_width() as f64, c.ffn_width as f64);
        let per_row = c.layers as f64 * w + 14.0 * w + 2.0 * qkv + 6.0 * f;
        seq as f64 * per_row + 2.0 * (c.heads * seq * seq) as f64
    }

    /// How many sequences of `seq` tokens one gradient batch holds: as many as the memory for
    /// activations and every buffer's size allow, at least one.
    pub fn gradient_batch_rows(&self, seq: usize) -> usize {
        let c = &self.config;
        let by_memory = GRADIENT_BYTES / (4.0 * self.gradient_values_per_sequence(seq));
        let largest_per_sequence = (c.heads * seq * seq)
            .max(seq * self.qkv_width())
            .max(seq * 2 * c.ffn_width)
            .max(c.vocab);
        let by_buffer = self.gpu.max_values() / largest_per_sequence.max(1);
        (by_memory as usize).min(by_buffer).max(1)
    }

    /// Whether the device takes a text of `seq` tokens at all: one sequence's attention maps and
    /// activations each fit one buffer.
    pub fn fits(&self, seq: usize) -> Result<()> {
        let c = &self.config;
        let largest = (c.heads * seq * seq).max(seq * self.qkv_width()).max(seq * 2 * c.ffn_width);
        self.gpu.check_size(largest, &format!("a text of {seq} tokens"))
    }

    /// The residual stream entering the first block, from `embeds` (`batch` sequences of `seq`
    /// rows each, at the positions `start..start + seq`): learned positions added, on the CPU.
    fn stream(&self, embeds: &[f32], seq: usize, start: usize) -> Result<Vec<f32>> {
        let Some(positions) = &self.positions else { return Ok(embeds.to_vec()) };
        let end = start + seq;
        let context = self.config.context_length;
        if end > context {
            return Err(EngineError::TextTooLong { tokens: end, max: context, context });
        }
        let added = positions.dequantize_rows_f32(start..end)?;
        Ok(embeds.iter().zip(added.iter().cycle()).map(|(e, p)| e + p).collect())
    }

    /// cos and sin of every (position, pair) angle for positions `start..start + seq`, on the
    /// device: computed in f64, as the CPU does.
    fn rope_tables(&self, start: usize, seq: usize) -> Result<Option<(Buf, Buf)>> {
        let Some(rope) = &self.rope else { return Ok(None) };
        let angles = (start..start + seq)
            .flat_map(|pos| rope.inv_freq.iter().map(move |f| pos as f64 * f))
            .collect::<Vec<_>>();
        let cos: Vec<f32> = angles.iter().map(|a| a.cos() as f32).collect();
        let sin: Vec<f32> = angles.iter().map(|a| a.sin() as f32).collect();
        Ok(Some((self.gpu.upload(&cos)?, self.gpu.upload(&sin)?)))
    }

    fn heads(&self, batch: usize, seq: usize, past: usize) -> Heads {
        let c = &self.config;
        Heads { batch, seq, heads: c.heads, kv_heads: c.kv_heads, head_dim: c.head_dim(), past }
    }

    fn parts(&self) -> (Part, Part, Part) {
        let (qkv, w, kv) =
            (self.qkv_width(), self.config.width, self.config.kv_heads * self.config.head_dim());
        (
            Part { stride: qkv, offset: 0 },
            Part { stride: qkv, offset: w },
            Part { stride: qkv, offset: w + kv },
        )
    }

    fn scale(&self) -> f32 {
        (1.0 / (self.config.head_dim() as f64).sqrt()) as f32
    }

    /// Block `layer` on `x` (`shape.batch · shape.seq` rows) into `step`, continuing `past` (the
    /// text's queries, keys and values, its first `shape.past` positions).
    #[allow(clippy::too_many_arguments)] // the block, its input, shape, prefix and what it keeps
    fn block_forward(
        &self,
        step: &mut Step,
        layer: usize,
        x: &Buf,
        shape: Heads,
        tables: Option<&(Buf, Buf)>,
        past: Option<&Buf>,
        keep: Keep,
    ) -> Result<BlockActs> {
        let (gpu, block, c) = (&self.gpu, &self.blocks[layer], &self.config);
        // What outlives the step: the output (the next block's input) where a pass goes on, and
        // what the pass keeps.
        let lasting = |step: &mut Step, len: usize, kept: bool| match kept {
            true => gpu.zeros(len),
            false => gpu.temporary(step, len),
        };
        let (rows, w, f) = (shape.batch * shape.seq, c.width, c.ffn_width);
        let (q, k, v) = self.parts();
        let n1 = gpu.temporary(step, rows * w)?;
        gpu.norm(&mut step.encoder, &block.attn_norm, x, rows, &n1);
        let qkv = lasting(step, rows * q.stride, keep == Keep::Keys)?;
        for (linear, offset) in &block.qkv {
            gpu.linear(
                &mut step.encoder,
                &linear.w,
                linear.bias.as_ref(),
                &n1,
                rows,
                &qkv,
                q.stride,
                *offset,
            );
        }
        if let (Some(tables), Some(rope)) = (tables, &self.rope) {
            let halves = rope.layout == RopeLayout::Halves;
            let hd = c.head_dim();
            gpu.rope(&mut step.encoder, &qkv, rows, c.heads, hd, q, tables, halves, false);
            gpu.rope(&mut step.encoder, &qkv, rows, c.kv_heads, hd, k, tables, halves, false);
        }
        let length = shape.past + shape.seq;
        let probs = lasting(step, shape.batch * c.heads * shape.seq * length, keep == Keep::Probs)?;
        let past_k = past.map(|p| (p, k));
        gpu.attention_scores(&mut step.encoder, shape, self.scale(), &qkv, q, k, past_k, &probs);
        let mixed = gpu.temporary(step, rows * w)?;
        gpu.attention_mix(&mut step.encoder, shape, &probs, &qkv, v, past.map(|p| (p, v)), &mixed);
        let attended = gpu.temporary(step, rows * w)?;
        gpu.linear(
            &mut step.encoder,
            &block.o.w,
            block.o.bias.as_ref(),
            &mixed,
            rows,
            &attended,
            w,
            0,
        );
        let x2 = gpu.temporary(step, rows * w)?;
        gpu.add(&mut step.encoder, x, &attended, &x2);
        let n2 = gpu.temporary(step, rows * w)?;
        gpu.norm(&mut step.encoder, &block.ffn_norm, &x2, rows, &n2);
        let h = gpu.temporary(step, rows * f)?;
        let mid = match (&block.gate, self.mlp) {
            (Some(gate), MlpKind::SwiGlu) => {
                let gate_up = gpu.temporary(step, rows * 2 * f)?;
                gpu.linear(
                    &mut step.encoder,
                    &gate.w,
                    gate.bias.as_ref(),
                    &n2,
                    rows,
                    &gate_up,
                    2 * f,
                    0,
                );
                let up = &block.up;
                gpu.linear(
                    &mut step.encoder,
                    &up.w,
                    up.bias.as_ref(),
                    &n2,
                    rows,
                    &gate_up,
                    2 * f,
                    f,
                );
                gpu.swiglu(&mut step.encoder, &gate_up, rows, f, &h);
                gate_up
            }
            _ => {
                let up = gpu.temporary(step, rows * f)?;
                gpu.linear(
                    &mut step.encoder,
                    &block.up.w,
                    block.up.bias.as_ref(),
                    &n2,
                    rows,
                    &up,
                    f,
                    0,
                );
                gpu.gelu(&mut step.encoder, &up, None, &h);
                up
            }
        };
        let mlp = gpu.temporary(step, rows * w)?;
        gpu.linear(
            &mut step.encoder,
            &block.down.w,
            block.down.bias.as_ref(),
            &h,
            rows,
            &mlp,
            w,
            0,
        );
        let out = lasting(step, rows * w, keep != Keep::Recompute)?;
        gpu.add(&mut step.encoder, &x2, &mlp, &out);
        Ok(BlockActs { qkv, probs, x2, mid, out })
    }

    /// The gradient with respect to block `layer`'s input `x`, from the gradient `d_out` of its
    /// output and its recomputed intermediates `acts`.
    #[allow(clippy::too_many_arguments)] // the block, its input, intermediates and gradient
    fn block_backward(
        &self,
        step: &mut Step,
        layer: usize,
        x: &Buf,
        acts: &BlockActs,
        d_out: &Buf,
        shape: Heads,
        tables: Option<&(Buf, Buf)>,
    ) -> Result<Buf> {
        let (gpu, block, c) = (&self.gpu, &self.blocks[layer], &self.config);
        let (rows, w, f) = (shape.batch * shape.seq, c.width, c.ffn_width);
        let (q, k, v) = self.parts();
        let dh = gpu.temporary(step, rows * f)?;
        gpu.linear_grad(&mut step.encoder, &block.down.w, d_out, rows, w, 0, &dh, false);
        let dn2 = gpu.temporary(step, rows * w)?;
        match &block.gate {
            Some(gate) if self.mlp == MlpKind::SwiGlu => {
                let d_gate_up = gpu.temporary(step, rows * 2 * f)?;
                gpu.swiglu_grad(&mut step.encoder, &acts.mid, &dh, rows, f, &d_gate_up);
                gpu.linear_grad(
                    &mut step.encoder,
                    &gate.w,
                    &d_gate_up,
                    rows,
                    2 * f,
                    0,
                    &dn2,
                    false,
                );
                gpu.linear_grad(
                    &mut step.encoder,
                    &block.up.w,
                    &d_gate_up,
                    rows,
                    2 * f,
                    f,
                    &dn2,
                    true,
                );
            }
            _ => {
                let d_up = gpu.temporary(step, rows * f)?;
                gpu.gelu(&mut step.encoder, &acts.mid, Some(&dh), &d_up);
                gpu.linear_grad(&mut step.encoder, &block.up.w, &d_up, rows, f, 0, &dn2, false);
            }
        }
        let dx2 = gpu.temporary(step, rows * w)?;
        step.encoder.copy_buffer_to_buffer(&d_out.buffer, 0, &dx2.buffer, 0, (rows * w * 4) as u64);
        gpu.norm_grad(&mut step.encoder, &block.ffn_norm, &acts.x2, &dn2, rows, &dx2, true);
        let d_mixed = gpu.temporary(step, rows * w)?;
        gpu.linear_grad(&mut step.encoder, &block.o.w, &dx2, rows, w, 0, &d_mixed, false);
        let d_scores = gpu.temporary(step, shape.batch * c.heads * shape.seq * shape.seq)?;
        let scale = self.scale();
        gpu.attention_dscores(
            &mut step.encoder,
            shape,
            scale,
            &acts.probs,
            &d_mixed,
            &acts.qkv,
            v,
            &d_scores,
        );
        let dqkv = gpu.temporary(step, rows * q.stride)?;
        gpu.attention_dq(&mut step.encoder, shape, &d_scores, &acts.qkv, k, &dqkv, q);
        let d_kv = (k, v);
        gpu.attention_dkv(
            &mut step.encoder,
            shape,
            &d_scores,
            &acts.probs,
            &acts.qkv,
            q,
            &d_mixed,
            &dqkv,
            d_kv,
        );
        if let (Some(tables), Some(rope)) = (tables, &self.rope) {
            let halves = rope.layout == RopeLayout::Halves;
            let hd = c.head_dim();
            gpu.rope(&mut step.encoder, &dqkv, rows, c.heads, hd, q, tables, halves, true);
            gpu.rope(&mut step.encoder, &dqkv, rows, c.kv_heads, hd, k, tables, halves, true);
        }
        let dn1 = gpu.temporary(step, rows * w)?;
        for (i, (linear, offset)) in block.qkv.iter().enumerate() {
            gpu.linear_grad(
                &mut step.encoder,
                &linear.w,
                &dqkv,
                rows,
                q.stride,
                *offset,
                &dn1,
                i > 0,
            );
        }
        let dx = gpu.zeros(rows * w)?;
        step.encoder.copy_buffer_to_buffer(&dx2.buffer, 0, &dx.buffer, 0, (rows * w * 4) as u64);
        gpu.norm_grad(&mut step.encoder, &block.attn_norm, x, &dn1, rows, &dx, true);
        Ok(dx)
    }

    /// Runs every block on `embeds` (`batch` sequences of `seq` positions after `past`'s first
    /// `start`), then the head, keeping what `keep` asks for. Counts each block's share of a
    /// forward pass and stops between blocks when asked.
    async fn run(
        &self,
        context: &RunContext,
        embeds: &[f32],
        batch: usize,
        seq: usize,
        past: Option<(&TextKeys, usize)>,
        keep: Keep,
    ) -> Result<Ran> {
        let (gpu, c) = (&self.gpu, &self.config);
        let start = past.map_or(0, |(_, start)| start);
        self.fits(start + seq)?;
        if embeds.len() != batch * seq * c.width {
            return Err(EngineError::Internal(format!(
                "{} values for {batch} sequences of {seq} positions",
                embeds.len()
            )));
        }
        let shape = self.heads(batch, seq, start);
        let tables = self.rope_tables(start, seq)?;
        let mut x = gpu.upload(&self.stream(embeds, seq, start)?)?;
        let (mut inputs, mut kept) = (Vec::new(), Vec::new());
        let units = progress::forward(batch, seq);
        for layer in 0..c.layers {
            if context.stop.requested() {
                return Err(EngineError::Stopped);
            }
            let mut step = gpu.step();
            let past_qkv = past.map(|(keys, _)| &keys.qkv[layer]);
            let acts =
                self.block_forward(&mut step, layer, &x, shape, tables.as_ref(), past_qkv, keep)?;
            gpu.submit(step);
            context.progress.advance(progress::share(units, layer..layer + 1, c.layers));
            match keep {
                Keep::Probs => kept.push(acts.probs),
                Keep::Keys => kept.push(acts.qkv),
                Keep::Inputs | Keep::Nothing | Keep::Recompute => {}
            }
            let next = acts.out;
            if keep == Keep::Inputs {
                inputs.push(std::mem::replace(&mut x, next));
            } else {
                x = next;
            }
        }
        let mut step = gpu.step();
        let last = gpu.zeros(batch * c.width)?;
        gpu.last_rows(&mut step.encoder, &x, &last, batch, seq, c.width, true);
        let normed = gpu.temporary(&mut step, batch * c.width)?;
        gpu.norm(&mut step.encoder, &self.output_norm, &last, batch, &normed);
        let logits = gpu.zeros(batch * c.vocab)?;
        gpu.linear(&mut step.encoder, &self.output.w, None, &normed, batch, &logits, c.vocab, 0);
        gpu.submit(step);
        Ok(Ran { logits, inputs, kept, last })
    }

    /// Next-token logits (`batch × vocab`) of `embeds`, continuing `past` from position `start`
    /// when given.
    pub async fn logits(
        &self,
        context: &RunContext,
        embeds: &[f32],
        batch: usize,
        seq: usize,
        past: Option<(&TextKeys, usize)>,
    ) -> Result<Vec<f32>> {
        let ran = self.run(context, embeds, batch, seq, past, Keep::Nothing).await?;
        self.gpu.read(&ran.logits).await
    }

    /// Next-token logits of `embeds`, with the pass kept for [`Self::gradient`].
    pub async fn forward(
        &self,
        context: &RunContext,
        embeds: &[f32],
        batch: usize,
        seq: usize,
    ) -> Result<(Vec<f32>, GpuPass)> {
        let ran = self.run(context, embeds, batch, seq, None, Keep::Inputs).await?;
        let logits = self.gpu.read(&ran.logits).await?;
        Ok((logits, GpuPass { batch, seq, inputs: ran.inputs, last: ran.last }))
    }

    /// The gradient with respect to the embeddings of `pass` (`batch · seq × width`) of a
    /// quantity of the logits whose gradient with respect to them is `d_logits` (`batch × vocab`).
    /// Counts each block's share of a backward pass; the recomputed forward passes are not
    /// counted.
    pub async fn gradient(
        &self,
        context: &RunContext,
        pass: GpuPass,
        d_logits: &[f32],
    ) -> Result<Vec<f32>> {
        let (gpu, c) = (&self.gpu, &self.config);
        let (batch, seq) = (pass.batch, pass.seq);
        let rows = batch * seq;
        let shape = self.heads(batch, seq, 0);
        let tables = self.rope_tables(0, seq)?;
        let mut step = gpu.step();
        let d_logits = gpu.upload(d_logits)?;
        let d_normed = gpu.temporary(&mut step, batch * c.width)?;
        let (head, vocab) = (&self.output.w, c.vocab);
        gpu.linear_grad(&mut step.encoder, head, &d_logits, batch, vocab, 0, &d_normed, false);
        let d_last = gpu.temporary(&mut step, batch * c.width)?;
        let norm = &self.output_norm;
        gpu.norm_grad(&mut step.encoder, norm, &pass.last, &d_normed, batch, &d_last, false);
        let mut dx = gpu.zeros(rows * c.width)?;
        gpu.last_rows(&mut step.encoder, &dx, &d_last, batch, seq, c.width, false);
        gpu.submit(step);
        let units = progress::backward(batch, seq);
        for (layer, x) in pass.inputs.iter().enumerate().rev() {
            if context.stop.requested() {
                return Err(EngineError::Stopped);
            }
            let mut step = gpu.step();
            let tables = tables.as_ref();
            let acts =
                self.block_forward(&mut step, layer, x, shape, tables, None, Keep::Recompute)?;
            dx = self.block_backward(&mut step, layer, x, &acts, &dx, shape, tables)?;
            gpu.submit(step);
            context.progress.advance(progress::share(units, layer..layer + 1, c.layers));
        }
        gpu.read(&dx).await
    }

    /// Every block's attention probabilities on `embeds` (one sequence of `seq` positions), each
    /// `heads × seq × seq`.
    pub async fn attentions(
        &self,
        context: &RunContext,
        embeds: &[f32],
        seq: usize,
    ) -> Result<Vec<Vec<f32>>> {
        let ran = self.run(context, embeds, 1, seq, None, Keep::Probs).await?;
        let mut maps = Vec::with_capacity(ran.kept.len());
        for probs in &ran.kept {
            maps.push(self.gpu.read(probs).await?);
        }
        Ok(maps)
    }

    /// The text `embeds`' (one sequence of `seq` positions) queries, keys and values in every
    /// block, for passes that continue it.
    pub async fn text_keys(
        &self,
        context: &RunContext,
        embeds: &[f32],
        seq: usize,
    ) -> Result<TextKeys> {
        let ran = self.run(context, embeds, 1, seq, None, Keep::Keys).await?;
        // Wait for the pass, so its errors are this call's.
        self.gpu.read(&ran.last).await?;
        Ok(TextKeys { qkv: ran.kept, seq })
    }
}

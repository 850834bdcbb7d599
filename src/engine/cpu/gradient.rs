//! The value of a scalar of the next-token logits and its gradient with respect to the input
//! embeddings, taken through the decoder a segment of blocks at a time (activation
//! checkpointing). A forward pass without a graph keeps only each segment's input; the backward
//! pass then runs the segments from the last to the first, each forward again with its graph, and
//! carries the gradient through it as a vector–Jacobian product. The segments are as long as
//! the run's [`GraphBudget`] allows; when the whole graph fits there is one segment and no
//! block runs twice. Either way the gradient is that of the same forward function.

use crate::engine::cpu::decoder::{last_position, run_blocks, Decoder};
use crate::engine::cpu::memory::layers_per_segment;
use crate::engine::error::{EngineError, Result};
use crate::engine::runtime::context::GraphBudget;
use crate::engine::runtime::progress;
use candle_core::{Tensor, Var};
use std::ops::Range;

/// `score(logits)` `(batch,)` at `embeds` `(batch, seq, width)`, and its gradient with respect to
/// `embeds` (each row's score differentiated with respect to that row), keeping at most `budget`
/// of graph alive.
pub fn value_and_gradient(
    decoder: &dyn Decoder,
    embeds: &Tensor,
    budget: GraphBudget,
    score: impl Fn(&Tensor) -> Result<Tensor>,
) -> Result<(Tensor, Tensor)> {
    let (rows, tokens, _) = embeds.dims3()?;
    value_and_gradient_in_segments(
        decoder,
        embeds,
        layers_per_segment(decoder.config(), tokens, rows, budget),
        score,
    )
}

/// [`value_and_gradient`] with segments of `per_segment` blocks (tests compare segmentations).
pub fn value_and_gradient_in_segments(
    decoder: &dyn Decoder,
    embeds: &Tensor,
    per_segment: usize,
    score: impl Fn(&Tensor) -> Result<Tensor>,
) -> Result<(Tensor, Tensor)> {
    let tape = Tape::record(decoder, embeds, per_segment)?;
    let values = score(tape.logits())?;
    let detached = values.detach();
    Ok((detached, tape.gradient(decoder, values)?))
}

/// A forward pass that can be differentiated afterwards, with any scalar of its logits: the last
/// segment's graph (through the head) and what entered each earlier segment.
pub struct Tape {
    earlier: Vec<(Range<usize>, Tensor)>,
    /// The last segment's blocks (`entering` entered them).
    last: Range<usize>,
    entering: Var,
    logits: Tensor,
}

impl Tape {
    /// The forward pass on `embeds` `(batch, seq, width)`, in segments of `per_segment` blocks.
    pub fn record(decoder: &dyn Decoder, embeds: &Tensor, per_segment: usize) -> Result<Self> {
        let mut segments = segments(decoder.config().layers, per_segment);
        let last = segments.pop().expect("at least one segment");
        // Through the earlier segments without a graph, keeping what enters each.
        let mut earlier = Vec::with_capacity(segments.len());
        let mut x = embeds.detach();
        for segment in segments {
            let next = run_blocks(decoder, &x, segment.clone(), None, drop)?;
            earlier.push((segment, std::mem::replace(&mut x, next)));
        }
        let entering = Var::from_tensor(&x)?;
        let stream = run_blocks(decoder, entering.as_tensor(), last.clone(), None, drop)?;
        let logits = decoder.head(&last_position(&stream)?)?;
        Ok(Self { earlier, last, entering, logits })
    }

    /// The next-token logits `(batch, vocab)`, tracked: score them, then ask for [`Self::gradient`].
    pub fn logits(&self) -> &Tensor {
        &self.logits
    }

    /// The gradient of `values` (a function of [`Self::logits`], one per row) with respect to the
    /// embeddings the tape was recorded on, `(batch, seq, width)`. Counts each segment's share of
    /// the backward pass as it is done; an earlier segment's forward pass, run again for it, is
    /// not counted.
    pub fn gradient(self, decoder: &dyn Decoder, values: Tensor) -> Result<Tensor> {
        self.gradient_with(decoder, values, |_, _, _| Ok(()))
    }

    /// [`Self::gradient`], handing `visit` each segment's first block, the stream entering it and
    /// the gradient there, from the last segment to the first (recorded a block per segment, that
    /// is every block's).
    pub fn gradient_with(
        self,
        decoder: &dyn Decoder,
        values: Tensor,
        mut visit: impl FnMut(usize, &Tensor, &Tensor) -> Result<()>,
    ) -> Result<Tensor> {
        let (rows, tokens, _) = self.entering.as_tensor().dims3()?;
        let (units, layers) = (progress::backward(rows, tokens), decoder.config().layers);
        let sink = &decoder.context().progress;
        let mut gradient = gradient_of(&values.sum_all()?, &self.entering)?;
        visit(self.last.start, self.entering.as_tensor(), &gradient)?;
        sink.advance(progress::share(units, self.last, layers));
        // The last segment's graph is no longer needed: free it before the next is built.
        drop((values, self.logits));
        // Back through the earlier segments: ∂⟨out, g⟩/∂in = Jᵀg, the gradient at the segment's input.
        for (segment, input) in self.earlier.into_iter().rev() {
            let entering = Var::from_tensor(&input)?;
            let out = sink.uncounted(|| {
                run_blocks(decoder, entering.as_tensor(), segment.clone(), None, drop)
            })?;
            gradient = gradient_of(&(out * &gradient)?.sum_all()?, &entering)?;
            visit(segment.start, &input, &gradient)?;
            sink.advance(progress::share(units, segment, layers));
        }
        Ok(gradient)
    }
}

/// `layers` split into consecutive runs of `per_segment`, the shorter remainder first: every
/// segment but the last is run twice, so the last is a whole one. One empty segment for a model
/// without blocks (its head still reads the stream).
fn segments(layers: usize, per_segment: usize) -> Vec<Range<usize>> {
    let per_segment = per_segment.max(1);
    let first_end = match layers % per_segment {
        0 => per_segment.min(layers),
        remainder => remainder,
    };
    std::iter::once(0..first_end)
        .chain((first_end..layers).step_by(per_segment).map(|start| start..start + per_segment))
        .collect()
}

fn gradient_of(value: &Tensor, wrt: &Var) -> Result<Tensor> {
    value.backward()?.get(wrt.as_tensor()).cloned().ok_or_else(|| {
        EngineError::Internal("the gradient did not reach the input embeddings".into())
    })
}

#[cfg(test)]
mod tests {
    use super::segments;

    #[test]
    fn segments_cover_every_layer_once_in_order_the_last_whole() {
        assert_eq!(segments(30, 30), vec![0..30]);
        assert_eq!(segments(30, 64), vec![0..30]);
        assert_eq!(segments(30, 15), vec![0..15, 15..30]);
        assert_eq!(segments(30, 7), vec![0..2, 2..9, 9..16, 16..23, 23..30]);
        assert_eq!(segments(30, 28), vec![0..2, 2..30]);
        assert_eq!(segments(3, 1), vec![0..1, 1..2, 2..3]);
        assert_eq!(segments(3, 0), vec![0..1, 1..2, 2..3]);
        assert_eq!(segments(0, 5), vec![0..0]);
    }
}

//! What the engine's candle custom ops share: their operands' values as contiguous slices.

use candle_core::Layout;
use std::ops::Range;

/// Where an operand's values lie in its storage: `op` (its name, for the message) requires
/// contiguous operands, which the callers make with `Tensor::contiguous` (free when they are).
pub fn contiguous_range(op: &str, layout: &Layout) -> candle_core::Result<Range<usize>> {
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(start..end),
        None => candle_core::bail!("{op}: operands must be contiguous"),
    }
}

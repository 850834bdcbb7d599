//! What a front end hands a computation: a way to stop it, where it counts its progress, and how
//! much forward graph its gradients may keep. The engine holds no state of its own between runs:
//! every run gets one of these, and two runs with their own contexts never see each other's.

use super::progress::ProgressSink;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

/// A computation's stop request. Non-zero: stop. Whoever wants a run stopped stores a value (the
/// page stores the newest run id it wants stopped, through the multi-threaded build's shared
/// memory, at [`StopToken::atomic`]'s address); every parallel map checks it, so a stopped run
/// ends within one projection on every thread.
#[derive(Clone, Debug, Default)]
pub struct StopToken(Arc<AtomicU32>);

impl StopToken {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn requested(&self) -> bool {
        self.0.load(Ordering::Relaxed) != 0
    }

    /// Asks the computations that use this token to stop.
    pub fn request(&self) {
        self.0.store(1, Ordering::SeqCst);
    }

    /// The flag itself, for a front end that writes it from elsewhere (or clears it).
    pub fn atomic(&self) -> &AtomicU32 {
        &self.0
    }
}

/// The most forward graph a gradient keeps alive at once, in bytes as the CPU backend estimates
/// it (`cpu::memory`): only the front end knows how much memory there is.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GraphBudget(pub f64);

/// The page's budget, the default. Half a GiB keeps the page's peak under 1 GiB with the default
/// model at any length, and keeps whole the graph of a single text up to ~150 tokens, so short
/// texts never compute a block twice.
pub const GRAPH_BUDGET_BYTES: f64 = 512.0 * 1024.0 * 1024.0;

impl Default for GraphBudget {
    fn default() -> Self {
        Self(GRAPH_BUDGET_BYTES)
    }
}

/// Everything a run takes besides its question. Cloning shares the stop token and the progress
/// sink.
#[derive(Clone, Default)]
pub struct RunContext {
    pub stop: StopToken,
    pub progress: ProgressSink,
    pub graph_budget: GraphBudget,
}

//! How far the computation in progress has come, so a front end can show a long run moving (an
//! occlusion of 512 tokens takes minutes in the page).
//!
//! Work is counted in positions through the model: a forward pass over `p` positions of `r`
//! sequences is `r · p` units, its backward pass ([`backward`]) twice that. Whoever starts a
//! computation says how much work to expect ([`ProgressSink::begin`], with the methods' own estimates,
//! `AttributionMethod::work`); the passes count what they do as they go (`advance`): a forward
//! pass block by block (`cpu::decoder::run_blocks`), a backward pass a segment of blocks at a time
//! (`gradient::Tape`), each its `share` of the pass, so that one long pass (saliency on 512
//! tokens in the page) moves too. A segment's forward pass run again for its backward pass is not
//! counted (`uncounted`): the estimates do not depend on how the graph is cut. An adaptive
//! method may finish below its estimate; a caller that left something out of the estimate sees
//! `done` pass `expected`, which a front end shows as nearly done.
//!
//! The count lives in a [`ProgressSink`], part of the run's context: two runs never mix. A front
//! end that wants to hear of it gives the sink a listener, called at every step of the count on
//! the thread that computes (every block: a front end shows only the steps that change what it
//! shows).

use std::ops::Range;
use std::sync::{Arc, Mutex};

/// The computation's work so far, and the work it expects in all.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    pub done: u64,
    pub expected: u64,
}

impl Progress {
    /// The percent of the expected work done, below 100 until the computation's result is there
    /// (it may do more than its estimate).
    pub fn percent(self) -> f64 {
        (100.0 * self.done as f64 / self.expected.max(1) as f64).min(99.0)
    }
}

type Listener = Box<dyn Fn(Progress) + Send + Sync>;

/// Where a run counts its work, and who hears of it. Cloning shares the count.
#[derive(Clone, Default)]
pub struct ProgressSink(Arc<Sink>);

#[derive(Default)]
struct Sink {
    /// The count, and whether passes are not counted now ([`ProgressSink::uncounted`]).
    state: Mutex<(Progress, bool)>,
    listener: Option<Listener>,
}

impl ProgressSink {
    /// A sink that calls `listener` at every step of the count: after each block of a forward
    /// pass and each segment of a backward pass.
    pub fn new(listener: impl Fn(Progress) + Send + Sync + 'static) -> Self {
        Self(Arc::new(Sink { state: Mutex::default(), listener: Some(Box::new(listener)) }))
    }

    fn state(&self) -> std::sync::MutexGuard<'_, (Progress, bool)> {
        self.0.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Starts counting a computation that expects `expected` units.
    pub fn begin(&self, expected: u64) {
        let progress = Progress { done: 0, expected };
        self.state().0 = progress;
        self.tell(progress);
    }

    /// The count so far.
    pub fn current(&self) -> Progress {
        self.state().0
    }

    /// Corrects the expected work once a computation knows its own better: one that was expected
    /// to take `estimated` units will take `actual` (a sampling method, once it has drawn its
    /// coalitions).
    pub(crate) fn revise(&self, estimated: u64, actual: u64) {
        let progress = {
            let mut state = self.state();
            state.0.expected = (state.0.expected + actual).saturating_sub(estimated);
            state.0
        };
        self.tell(progress);
    }

    /// Counts `units` of work done.
    pub(crate) fn advance(&self, units: u64) {
        let progress = {
            let mut state = self.state();
            if state.1 {
                return;
            }
            state.0.done += units;
            state.0
        };
        self.tell(progress);
    }

    /// Runs `run` without counting its passes: work done again, which no estimate includes.
    pub(crate) fn uncounted<T>(&self, run: impl FnOnce() -> T) -> T {
        /// Restores the previous state however `run` ends.
        struct Resume<'a>(&'a ProgressSink, bool);
        impl Drop for Resume<'_> {
            fn drop(&mut self) {
                self.0.state().1 = self.1;
            }
        }
        let paused = std::mem::replace(&mut self.state().1, true);
        let _resume = Resume(self, paused);
        run()
    }

    fn tell(&self, progress: Progress) {
        if let Some(listener) = &self.0.listener {
            listener(progress);
        }
    }
}

/// The part of a pass's `units` done by its blocks `blocks` of `layers`: the pass's units spread
/// over its blocks in whole units, so that the blocks' parts add up to the pass's exactly. A model
/// without blocks does the whole pass in its (empty) range of them.
pub(crate) fn share(units: u64, blocks: Range<usize>, layers: usize) -> u64 {
    if layers == 0 {
        return units;
    }
    let until = |block: usize| units * block as u64 / layers as u64;
    until(blocks.end) - until(blocks.start)
}

/// A forward pass over `positions` positions of `sequences` inputs.
pub fn forward(sequences: usize, positions: usize) -> u64 {
    (sequences * positions) as u64
}

/// The backward pass of a forward pass over `positions` positions of `sequences` inputs: twice
/// its units. It computes only the input gradient, a product with each weight as the forward pass
/// does, and its elementwise work is about as much again.
pub fn backward(sequences: usize, positions: usize) -> u64 {
    2 * forward(sequences, positions)
}

/// Gradients at `sequences` inputs of `positions` positions: forward and backward passes.
pub fn gradients(sequences: usize, positions: usize) -> u64 {
    forward(sequences, positions) + backward(sequences, positions)
}

//! How far the computation in progress has come, so a front end can show a long run moving (an
//! occlusion of 512 tokens takes minutes in the page).
//!
//! Work is counted in positions through the model: a forward pass over `p` positions of `r`
//! sequences is `r · p` units, its backward pass ([`backward`]) twice that. Whoever starts a
//! computation says how much work to expect ([`begin`], with the methods' own estimates,
//! `AttributionMethod::work`); the passes count what they do as they go (`advance`): a forward
//! pass block by block (`arch::run_blocks`), a backward pass a segment of blocks at a time
//! (`gradient::Tape`), each its `share` of the pass, so that one long pass (saliency on 512
//! tokens in the page) moves too. A segment's forward pass run again for its backward pass is not
//! counted (`uncounted`): the estimates do not depend on how the graph is cut. An adaptive
//! method may finish below its estimate; a caller that left something out of the estimate sees
//! `done` pass `expected`, which a front end shows as nearly done.
//!
//! The count belongs to the thread that runs the computation (the one that calls `Problem`'s
//! passes), so computations on different threads (the tests) do not mix. A front end that wants
//! to hear of it sets a listener once ([`listen`]); it is called on that thread at every step of
//! the count (every block: a front end shows only the steps that change what it shows).

use std::cell::Cell;
use std::ops::Range;
use std::sync::OnceLock;

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

thread_local! {
    static PROGRESS: Cell<Progress> = const { Cell::new(Progress { done: 0, expected: 0 }) };
    /// Whether this thread's passes are not counted now ([`uncounted`]).
    static PAUSED: Cell<bool> = const { Cell::new(false) };
}

static LISTENER: OnceLock<fn(Progress)> = OnceLock::new();

/// Calls `listener` with the count at every step from now on: after each block of a forward pass
/// and each segment of a backward pass (the first listener set stays).
pub fn listen(listener: fn(Progress)) {
    let _ = LISTENER.set(listener);
}

/// Starts counting a computation that expects `expected` units on this thread.
pub fn begin(expected: u64) {
    PROGRESS.set(Progress { done: 0, expected });
    tell(PROGRESS.get());
}

/// This thread's count.
pub fn current() -> Progress {
    PROGRESS.get()
}

/// Counts `units` of work done on this thread.
pub(crate) fn advance(units: u64) {
    if PAUSED.get() {
        return;
    }
    let progress = PROGRESS.get();
    let progress = Progress { done: progress.done + units, ..progress };
    PROGRESS.set(progress);
    tell(progress);
}

/// Runs `run` without counting its passes: work done again, which no estimate includes.
pub(crate) fn uncounted<T>(run: impl FnOnce() -> T) -> T {
    /// Restores the previous state however `run` ends.
    struct Resume(bool);
    impl Drop for Resume {
        fn drop(&mut self) {
            PAUSED.set(self.0);
        }
    }
    let _resume = Resume(PAUSED.replace(true));
    run()
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

fn tell(progress: Progress) {
    if let Some(listener) = LISTENER.get() {
        listener(progress);
    }
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

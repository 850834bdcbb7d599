//! The engine's own parallelism: a map over independent pieces of work, on rayon's pool natively
//! and in the page's multi-threaded build (wasm with atomics, built by `scripts/build-threads.sh`
//! for cross-origin isolated pages, where the pool's threads are Web Workers). The single-threaded
//! page has no other thread: there the pieces run in order on the calling thread.
//!
//! The engine starts no thread itself: the pool is rayon's global one, sized by whoever runs the
//! engine (the CLI from `RAYON_NUM_THREADS`, the page's worker from the browser's core count).
//!
//! A computation can be stopped from outside through its run's [`StopToken`]: every map checks
//! it, so a stopped run ends within one projection, on every thread. The page needs this because
//! terminating its worker does not stop the pool's threads in the middle of a computation: they
//! would go on to its end, taking the cores from the next run.

use super::context::StopToken;
use crate::engine::error::Stopped;

pub use pool::{on_pool, threads};

/// How many pieces to cut a projection into: one per thread natively, where the engine has the
/// cores to itself; four per thread in the multi-threaded page, whose pool threads share the cores
/// with the browser's (the page's main thread, V8's compiler). There a helper the system pauses in
/// the middle of a piece holds back only a quarter of its share while the other threads take the
/// rest (measured in Chromium: the first run after a page load 0.93 s instead of 1.19 s, saliency
/// at 64 tokens 1.18–1.27 s instead of 1.28–1.40 s, medians of two rounds).
pub fn pieces() -> usize {
    let threads = threads();
    match cfg!(target_arch = "wasm32") && threads > 1 {
        true => threads * 4,
        false => threads,
    }
}

/// `range` cut into at most `pieces` consecutive runs, each a whole number of `unit`s but the
/// last, as even as that allows: the items of a map over rows or columns.
pub fn split(
    range: std::ops::Range<usize>,
    pieces: usize,
    unit: usize,
) -> Vec<std::ops::Range<usize>> {
    let per_piece = run_length(range.len(), pieces, unit);
    let end = range.end;
    range.step_by(per_piece).map(|start| start..(start + per_piece).min(end)).collect()
}

/// The length of each of [`split`]'s runs over `len` items (the last may be shorter): at least
/// one unit.
fn run_length(len: usize, pieces: usize, unit: usize) -> usize {
    len.div_ceil(unit.max(1)).div_ceil(pieces.max(1)).max(1) * unit.max(1)
}

/// `f` of each item, in the items' order, on the pool's threads; `Stopped` once `stop` is
/// requested (a piece already running finishes first).
pub fn map<I: Send, R: Send>(
    stop: &StopToken,
    items: Vec<I>,
    f: impl Fn(I) -> R + Sync + Send,
) -> Result<Vec<R>, Stopped> {
    pool::map(items, |item| match stop.requested() {
        true => Err(Stopped),
        false => Ok(f(item)),
    })
    .into_iter()
    .collect()
}

/// `f(row index, the row of each input, the same row of out)` for every row of `width` values of
/// `out`, the rows split over the pool's threads: the engine's row-wise ops (norms, rotations,
/// softmax) in one pass each.
pub fn by_rows<T: Send + Sync, const N: usize>(
    stop: &StopToken,
    inputs: [&[T]; N],
    width: usize,
    out: &mut [T],
    f: impl Fn(usize, [&[T]; N], &mut [T]) + Sync + Send,
) -> Result<(), Stopped> {
    if out.is_empty() {
        return Ok(());
    }
    assert!(
        width > 0
            && out.len().is_multiple_of(width)
            && inputs.iter().all(|values| values.len() == out.len()),
        "by_rows: operand lengths"
    );
    let rows_per_piece = run_length(out.len() / width, pieces(), 1);
    let pieces = out.chunks_mut(rows_per_piece * width).enumerate().collect();
    map(stop, pieces, |(index, out): (usize, &mut [T])| {
        for (offset, out) in out.chunks_exact_mut(width).enumerate() {
            let row = index * rows_per_piece + offset;
            f(row, inputs.map(|values| &values[row * width..(row + 1) * width]), out);
        }
    })?;
    Ok(())
}

#[cfg(any(not(target_arch = "wasm32"), target_feature = "atomics"))]
mod pool {
    use rayon::prelude::*;
    use std::cell::Cell;
    use std::hint::spin_loop;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    /// Threads the map runs on.
    pub fn threads() -> usize {
        rayon::current_num_threads()
    }

    /// Inside [`on_pool`], on the thread running the computation: the pieces go to the session's
    /// helpers, who are already awake. Anywhere else (the tests, a map inside a piece): rayon's
    /// own split.
    pub fn map<I: Send, R: Send>(items: Vec<I>, f: impl Fn(I) -> R + Sync + Send) -> Vec<R> {
        match SESSION.take() {
            Some(session) => {
                // SAFETY: `on_pool` set the pointer on this thread and keeps the session alive
                // until its computation, which this map is part of, returns.
                let results = unsafe { &*session }.map(items, &f);
                SESSION.set(Some(session));
                results
            }
            None => items.into_par_iter().map(f).collect(),
        }
    }

    /// Runs `f` on one thread of the pool while every other thread of the pool spins, waiting for
    /// `f`'s maps: the pieces of a map start at once on every thread. Through rayon alone, each map
    /// had to wake a sleeping thread and, at its end, be woken by it, and a run has hundreds of
    /// maps of a few milliseconds (measured: runs 5 % faster in the page, 5–25 % natively). The
    /// caller only waits. One computation at a time: a second caller waits for the first.
    pub fn on_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
        static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
        let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let session = Session::default();
        let computation = Mutex::new(Some(f));
        let mut outcomes = rayon::broadcast(|thread| match thread.index() {
            0 => {
                let _running = Running::start(&session);
                let f = computation.lock().unwrap().take().expect("the computation runs once");
                Some(f())
            }
            _ => {
                session.help();
                None
            }
        });
        // The outcome may lie in memory a pool thread grew.
        see_memory_growth();
        outcomes.swap_remove(0).expect("thread 0 ran the computation")
    }

    /// Makes this thread see every growth of the shared wasm memory that happened before.
    ///
    /// Where the browser checks wasm memory accesses in code (V8 without its trap handler, as in
    /// Debian's Chromium), each thread checks against its own copy of the memory's size, which an
    /// interrupt updates some time after another thread grew the memory. A thread that learns of
    /// data through an atomic (a published batch, a finished piece) and reads it at once may find
    /// it beyond its stale size: "memory access out of bounds", seen in the page when a helper was
    /// descheduled between its check for interrupts and its read of a new batch. Growing the memory
    /// by zero pages updates this thread's size at once (V8: `WasmMemoryObject::Grow` broadcasts
    /// the current size and updates its own thread synchronously).
    fn see_memory_growth() {
        #[cfg(target_arch = "wasm32")]
        core::arch::wasm32::memory_grow(0, 0);
    }

    thread_local! {
        /// The session whose computation runs on this thread (taken while one of its maps runs).
        static SESSION: Cell<Option<*const Session>> = const { Cell::new(None) };
    }

    #[derive(Default)]
    struct Session {
        /// Bumped when a batch is published, so helpers spin on one value.
        published: AtomicUsize,
        batch: Mutex<Option<Arc<Batch>>>,
        ended: AtomicBool,
    }

    /// While alive, this thread's maps go to `session`. Dropped, even when the computation
    /// panics, it forgets the session and ends it, so the helpers stop and no pointer to it stays.
    struct Running<'a>(&'a Session);

    impl<'a> Running<'a> {
        fn start(session: &'a Session) -> Self {
            SESSION.set(Some(session));
            Self(session)
        }
    }

    impl Drop for Running<'_> {
        fn drop(&mut self) {
            SESSION.set(None);
            self.0.ended.store(true, Ordering::Release);
        }
    }

    /// One map's pieces. Whoever claims index `i < count` runs piece `i`.
    struct Batch {
        /// The map's piece runner, its lifetime erased: it is only called for a claimed index
        /// below `count`, and the map returns (ending the borrow) only after `done` reaches
        /// `count`, so no call outlives it. After that, a helper still holding the batch touches
        /// only the counters.
        run: &'static (dyn Fn(usize) + Sync),
        count: usize,
        next: AtomicUsize,
        done: AtomicUsize,
    }

    impl Batch {
        /// Claims and runs pieces until none is left.
        fn work(&self) {
            loop {
                let i = self.next.fetch_add(1, Ordering::Relaxed);
                if i >= self.count {
                    return;
                }
                // Counted even if the piece panics (natively), so the map never waits forever:
                // it then finds the piece's result missing and panics itself.
                let _counted = CountOnDrop(&self.done);
                (self.run)(i);
            }
        }
    }

    struct CountOnDrop<'a>(&'a AtomicUsize);

    impl Drop for CountOnDrop<'_> {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::Release);
        }
    }

    impl Session {
        fn map<I: Send, R: Send>(&self, items: Vec<I>, f: &(impl Fn(I) -> R + Sync)) -> Vec<R> {
            let count = items.len();
            let items: Vec<Mutex<Option<I>>> =
                items.into_iter().map(|item| Mutex::new(Some(item))).collect();
            let results: Vec<Mutex<Option<R>>> = (0..count).map(|_| Mutex::new(None)).collect();
            let run = |i: usize| {
                let item = items[i].lock().unwrap().take().expect("each piece is claimed once");
                let result = f(item);
                *results[i].lock().unwrap() = Some(result);
            };
            let run: &(dyn Fn(usize) + Sync) = &run;
            // SAFETY: see `Batch::run`: this function returns only after every claimed piece has
            // finished (`done == count` below), and the batch is unpublished before that.
            let run: &'static (dyn Fn(usize) + Sync) = unsafe { std::mem::transmute(run) };
            let batch = Arc::new(Batch {
                run,
                count,
                next: AtomicUsize::new(0),
                done: AtomicUsize::new(0),
            });
            *self.batch.lock().unwrap() = Some(batch.clone());
            self.published.fetch_add(1, Ordering::Release);
            batch.work();
            while batch.done.load(Ordering::Acquire) < count {
                spin_loop();
            }
            // The helpers' results may lie in memory they grew.
            see_memory_growth();
            *self.batch.lock().unwrap() = None;
            results
                .into_iter()
                .map(|result| result.into_inner().unwrap().expect("a piece of the map panicked"))
                .collect()
        }

        /// A helper thread: takes pieces of each published batch until the computation ends, and
        /// meanwhile any rayon job the computation hands out.
        fn help(&self) {
            let mut seen = 0;
            while !self.ended.load(Ordering::Acquire) {
                let published = self.published.load(Ordering::Acquire);
                if published != seen {
                    seen = published;
                    // The batch and its items may lie in memory the computation's thread grew.
                    see_memory_growth();
                    let batch = self.batch.lock().unwrap().clone();
                    if let Some(batch) = batch {
                        batch.work();
                    }
                } else if rayon::yield_now() != Some(rayon::Yield::Executed) {
                    spin_loop();
                }
            }
        }
    }
}

#[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
mod pool {
    pub fn threads() -> usize {
        1
    }

    pub fn map<I: Send, R: Send>(items: Vec<I>, f: impl Fn(I) -> R + Sync + Send) -> Vec<R> {
        items.into_iter().map(f).collect()
    }

    pub fn on_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
        f()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The runs cover the range in order, each a whole number of units but the last, and there
    /// are no more of them than pieces.
    #[test]
    fn split_covers_the_range_in_whole_units() {
        for (range, pieces, unit) in [
            (0..0, 4, 8),
            (0..576, 8, 8),
            (0..576, 2, 1),
            (5..23, 4, 8),
            (0..7, 16, 1),
            (3..4, 3, 8),
            (0..1536, 8, 8),
            (0..100, 0, 0),
        ] {
            let runs = split(range.clone(), pieces, unit);
            assert!(runs.len() <= pieces.max(1), "{range:?} in {pieces}: {runs:?}");
            let mut next = range.start;
            for (i, run) in runs.iter().enumerate() {
                assert!(
                    run.start == next && run.end > run.start,
                    "{range:?} in {pieces}: {runs:?}"
                );
                assert!(
                    i + 1 == runs.len() || run.len() % unit.max(1) == 0,
                    "{range:?} in {pieces} of {unit}: {runs:?}"
                );
                next = run.end;
            }
            assert_eq!(next, range.end, "{range:?} in {pieces}: {runs:?}");
        }
    }

    /// Every row is visited once, with its own index and the same row of each input, whatever
    /// the split; an empty output visits nothing.
    #[test]
    fn by_rows_visits_each_row_once_with_its_inputs() {
        for rows in [0, 1, 3, 7, 64] {
            let width = 5;
            let first: Vec<f64> = (0..rows * width).map(|i| i as f64).collect();
            let second: Vec<f64> = first.iter().map(|v| v * 10.0).collect();
            let mut out = vec![f64::NAN; rows * width];
            by_rows(&StopToken::new(), [&first, &second], width, &mut out, |row, [a, b], out| {
                for i in 0..width {
                    out[i] = a[i] + b[i] + row as f64 * 1e6;
                }
            })
            .unwrap();
            for (i, value) in out.iter().enumerate() {
                assert_eq!(
                    *value,
                    i as f64 * 11.0 + (i / width) as f64 * 1e6,
                    "{rows} rows: value {i}"
                );
            }
        }
    }
}

//! The engine's own parallelism: a map over independent pieces of work, on rayon's pool natively
//! and in the page's multi-threaded build (wasm with atomics, built by `scripts/build-threads.sh`
//! for cross-origin isolated pages, where the pool's threads are Web Workers). The single-threaded
//! page has no other thread: there the pieces run in order on the calling thread.
//!
//! The engine starts no thread itself: the pool is rayon's global one, sized by whoever runs the
//! engine (the CLI from `RAYON_NUM_THREADS`, the page's worker from the browser's core count).
//!
//! A computation can be stopped from outside through [`stop_flag`]: every map checks it, so a
//! stopped run ends within one projection, on every thread. The page needs this because
//! terminating its worker does not stop the pool's threads in the middle of a computation: they
//! would go on to its end, taking the cores from the next run.

use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};

pub use pool::{on_pool, threads};

/// Non-zero: stop. Whoever starts a computation clears it; whoever wants it stopped sets it (the
/// page writes it through the multi-threaded build's shared memory, at this static's address).
static STOP: AtomicU32 = AtomicU32::new(0);

pub fn stop_flag() -> &'static AtomicU32 {
    &STOP
}

pub fn stop_requested() -> bool {
    STOP.load(Ordering::Relaxed) != 0
}

/// A map that did not run because a stop was requested.
#[derive(Debug)]
pub struct Stopped;

/// `Stopped`'s text, by which `EngineError` recognises it inside a candle error.
pub const STOPPED: &str = "the computation was stopped on request";

impl fmt::Display for Stopped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(STOPPED)
    }
}

/// `f` of each item, in the items' order, on the pool's threads; `Stopped` once a stop is
/// requested (a piece already running finishes first).
pub fn map<I: Send, R: Send>(items: Vec<I>, f: impl Fn(I) -> R + Sync + Send) -> Result<Vec<R>, Stopped> {
    pool::map(items, |item| match stop_requested() {
        true => Err(Stopped),
        false => Ok(f(item)),
    })
    .into_iter()
    .collect()
}

#[cfg(any(not(target_arch = "wasm32"), target_feature = "atomics"))]
mod pool {
    use rayon::prelude::*;

    /// Threads the map runs on.
    pub fn threads() -> usize {
        rayon::current_num_threads()
    }

    pub fn map<I: Send, R: Send>(items: Vec<I>, f: impl Fn(I) -> R + Sync + Send) -> Vec<R> {
        items.into_par_iter().map(f).collect()
    }

    /// Runs `f` on a thread of the pool: the maps inside it then share their pieces between that
    /// thread and the others, while the caller only waits. A caller outside the pool would
    /// otherwise hand every map's pieces over and wait for each (in a browser, a wake-up per map;
    /// natively, a third thread competing for the cores).
    pub fn on_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
        rayon::scope(|_| f())
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

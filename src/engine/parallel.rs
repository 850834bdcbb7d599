//! The engine's own parallelism: a map over independent pieces of work, on rayon's pool natively
//! and in the page's multi-threaded build (wasm with atomics, built by `scripts/build-threads.sh`
//! for cross-origin isolated pages, where the pool's threads are Web Workers). The single-threaded
//! page has no other thread: there the pieces run in order on the calling thread.
//!
//! The engine starts no thread itself: the pool is rayon's global one, sized by whoever runs the
//! engine (the CLI from `RAYON_NUM_THREADS`, the page's worker from the browser's core count).

pub use pool::{map, on_pool, threads};

#[cfg(any(not(target_arch = "wasm32"), target_feature = "atomics"))]
mod pool {
    use rayon::prelude::*;

    /// Threads the map runs on.
    pub fn threads() -> usize {
        rayon::current_num_threads()
    }

    /// `f` of each item, in the items' order.
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

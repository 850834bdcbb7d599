//! The engine's own parallelism: a map over independent pieces of work. In the page's
//! multi-threaded build (wasm with atomics, built by `scripts/build-threads.sh` for cross-origin
//! isolated pages) the pieces run on rayon's pool of Web Workers. Elsewhere they run in order on
//! the calling thread: natively, candle's matmuls already use every core, and a single-threaded
//! page has no other thread.

/// Threads the map runs on.
pub fn threads() -> usize {
    #[cfg(target_feature = "atomics")]
    return rayon::current_num_threads();
    #[cfg(not(target_feature = "atomics"))]
    1
}

/// `f` of each item, in the items' order.
pub fn map<I: Send, R: Send>(items: Vec<I>, f: impl Fn(I) -> R + Sync + Send) -> Vec<R> {
    #[cfg(target_feature = "atomics")]
    {
        use rayon::prelude::*;
        items.into_par_iter().map(f).collect()
    }
    #[cfg(not(target_feature = "atomics"))]
    items.into_iter().map(f).collect()
}

/// Runs `f` on a thread of the pool, where there is one: the maps inside it then share their
/// pieces between that thread and the others, while the caller only waits. A caller outside the
/// pool would otherwise hand every map's pieces over and wait for each, which in a browser costs
/// a wake-up per map.
pub fn on_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    #[cfg(target_feature = "atomics")]
    return rayon::scope(|_| f());
    #[cfg(not(target_feature = "atomics"))]
    f()
}

// The engine's worker. On a cross-origin isolated page (SharedArrayBuffer allowed) with more than
// one core it runs the multi-threaded build (threads/, made by scripts/build-threads.sh) on a pool
// of one Web Worker per core; otherwise, or when that build cannot start, the page's own
// single-threaded wasm. Either way the same Rust code answers the page (`serve_engine`).
const cores = navigator.hardwareConcurrency || 1;

async function multiThreaded() {
  const engine = await import('./threads/salient-web.js');
  await engine.default();
  await engine.initThreadPool(cores);
  return engine;
}

let engine = null;
if (self.crossOriginIsolated && cores > 1) {
  try {
    engine = await multiThreaded();
  } catch (e) {
    console.warn(`The multi-threaded engine could not start (${e}); using one thread.`);
  }
}
if (!engine) {
  engine = await import('./salient-web.js');
  await engine.default();
}
engine.serve_engine();

// The engine's worker. On a cross-origin isolated page (SharedArrayBuffer allowed) with more than
// one core it runs a multi-threaded build (made by scripts/build-threads.sh) on a pool of one Web
// Worker per core: threads-relaxed/ where the browser has relaxed SIMD (its fused multiply-add
// speeds up the matrix kernel), threads/ elsewhere. Otherwise, or when that build cannot start,
// the page's own single-threaded wasm. Either way the same Rust code answers the page
// (`serve_engine`).
const cores = navigator.hardwareConcurrency || 1;

// A module of one function that returns f32x4.relaxed_madd of three constants: it validates only
// where the browser implements relaxed SIMD.
const RELAXED_SIMD_PROBE = 'AGFzbQEAAAABBQFgAAF7AwIBAAo9ATsA/QwAAAAAAAAAAAAAAAAAAAAA/QwAAAAAAAAAAAAAAAAAAAAA/QwAAAAAAAAAAAAAAAAAAAAA/YUCCw==';
const relaxedSimd = WebAssembly.validate(Uint8Array.from(atob(RELAXED_SIMD_PROBE), (c) => c.charCodeAt(0)));

async function multiThreaded() {
  const engine = await import(relaxedSimd ? './threads-relaxed/salient-web.js' : './threads/salient-web.js');
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

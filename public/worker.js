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

// wasm-bindgen-rayon starts each pool thread inside a promise, so a pool thread that dies (its
// wasm traps) leaves only an unhandled rejection in its own console, and the run waits for it
// forever. Nor could this worker pass an error on: it is blocked waiting for the pool. So each
// pool thread's script is imported by a small module that posts such a rejection on the
// BroadcastChannel named after this worker, on which the page listens (WorkerBridge: "The
// worker stopped (one of its threads failed: …)").
function reportPoolThreadDeaths() {
  const NativeWorker = self.Worker;
  self.Worker = class extends NativeWorker {
    constructor(script, options) {
      const url = new URL(script, self.location.href).href;
      const starter = `self.addEventListener('unhandledrejection', (e) => new BroadcastChannel(${JSON.stringify(self.name)}).postMessage(String(e.reason)));\n`
        + `import ${JSON.stringify(url)};\n`;
      super(URL.createObjectURL(new Blob([starter], { type: 'text/javascript' })), options);
    }
  };
}

async function multiThreaded() {
  reportPoolThreadDeaths();
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
// For the tests of what a bug does to the worker (src/web/crash.rs); nothing else calls it.
self.salientTestPanic = engine.test_panic;
// The GPU spike's probe (src/web/worker.rs), for tests/e2e/gpu.mjs.
self.salientGpuProbe = engine.gpu_probe;

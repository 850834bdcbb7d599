// The engine's worker. The page names the backend chosen (`?backend=auto|gpu|cpu`). Where a GPU
// is wanted (auto or gpu) and the browser offers a WebGPU adapter, it runs the page's own
// single-threaded wasm, the build with the GPU backend (wgpu's objects cannot cross threads).
// Otherwise, on a cross-origin isolated page (SharedArrayBuffer allowed) with more than one core,
// it runs a multi-threaded build (made by scripts/build-threads.sh) on a pool of one Web Worker
// per core: threads-relaxed/ where the browser has relaxed SIMD (its fused multiply-add speeds up
// the matrix kernel), threads/ elsewhere; and the single-threaded wasm where that cannot start.
// Either way the same Rust code answers the page (`serve_engine`).
const cores = navigator.hardwareConcurrency || 1;
const asked = new URL(self.location.href).searchParams.get('backend');
const choice = ['auto', 'gpu', 'cpu'].includes(asked) ? asked : 'auto';

// A module of one function that returns f32x4.relaxed_madd of three constants: it validates only
// where the browser implements relaxed SIMD.
const RELAXED_SIMD_PROBE = 'AGFzbQEAAAABBQFgAAF7AwIBAAo9ATsA/QwAAAAAAAAAAAAAAAAAAAAA/QwAAAAAAAAAAAAAAAAAAAAA/QwAAAAAAAAAAAAAAAAAAAAA/YUCCw==';
const relaxedSimd = WebAssembly.validate(Uint8Array.from(atob(RELAXED_SIMD_PROBE), (c) => c.charCodeAt(0)));

// Why the GPU cannot be used here, or null when the browser offers an adapter.
async function noGpu() {
  if (!self.navigator.gpu) return 'this browser has no WebGPU';
  try {
    return (await self.navigator.gpu.requestAdapter()) ? null : 'the browser offers no WebGPU adapter';
  } catch (e) {
    return `WebGPU failed (${e})`;
  }
}

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

const notOnGpu = choice === 'cpu' ? null : await noGpu();
const gpu = choice !== 'cpu' && notOnGpu === null;
let engine = null;
if (!gpu && self.crossOriginIsolated && cores > 1) {
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
// Auto without a GPU is simply the CPU; a GPU chosen but missing is said.
engine.serve_engine(gpu, choice === 'gpu' ? notOnGpu : null);
// For the tests of what a bug does to the worker (src/web/crash.rs) and of the fallback from a
// lost GPU (src/web/worker/mod.rs); nothing else calls them.
self.salientTestPanic = engine.test_panic;
self.salientTestLoseGpu = engine.test_lose_gpu;
// The GPU spike's probe (src/web/worker/mod.rs), for tests/e2e/gpu.mjs.
self.salientGpuProbe = engine.gpu_probe;

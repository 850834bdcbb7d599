#!/usr/bin/env node
// The page's f32 peak for the benchmark: the multiply-adds per second that wasm's 128-bit SIMD
// reaches in this Chromium, on 1 and on N dedicated workers at once (the page's engine threads are
// workers too), so that the page's GFLOP/s can be read as a share of what the machine allows it.
//
//   node tests/e2e/page-peak.mjs --url URL --wasm plain=FILE,relaxed=FILE [--threads 1,2]
//
// FILE: tests/e2e/simd-peak built for wasm32 (with relaxed SIMD for `relaxed`). A build the browser
// cannot run is reported as unsupported. Prints one JSON line per (build, threads):
//   {"kind":"page-peak","build":"relaxed","threads":2,"gflops":…,"gflops_runs":[…]}
// The workers run on a page of URL's origin that holds nothing else (no engine, no model).
import { readFileSync } from 'node:fs';
import { launch, opt } from './lib.mjs';

const URL_ = opt('url', 'http://127.0.0.1:8080/');
const BUILDS = opt('wasm', '').split(',').filter(Boolean).map((p) => p.split('='));
const THREADS = opt('threads', '1,2').split(',').map(Number);
// Multiply-add rounds per call: about 20 ms at 40 GFLOP/s.
const ROUNDS = 8_000_000, CALLS = 5, MEASUREMENTS = 9, WARM_UP_CALLS = 400, WARM_UP_MS = 2000;

// In the page: starts `threads` workers on the module, warms them up (V8 runs a function's first
// calls in its baseline compiler and swaps in optimized code later), then times `measurements`
// rounds in which every worker makes `calls` calls at once. GFLOP/s per round: all workers' FLOPs
// over the slowest worker's time; null if this browser cannot run the module.
async function measure({ bytes, threads, rounds, calls, measurements, warmUpCalls, warmUpMs }) {
  const code = Uint8Array.from(atob(bytes), (c) => c.charCodeAt(0));
  if (!WebAssembly.validate(code)) return null;
  const module = await WebAssembly.compile(code);
  const source = `onmessage = (e) => {
    if (e.data.module) {
      const exports = new WebAssembly.Instance(e.data.module, {}).exports;
      self.run = exports.multiply_adds;
      // For at least warmUpMs and until two calls in a row take as long (within 3 %): optimized
      // code has taken over and the core's clock has settled.
      const start = performance.now();
      let last = Infinity;
      for (let i = 0; i < e.data.warmUpCalls; i++) {
        const t0 = performance.now();
        self.run(e.data.rounds / 4, 1 + i);
        const ms = performance.now() - t0;
        if (t0 - start >= e.data.warmUpMs && Math.abs(ms - last) <= 0.03 * last) break;
        last = ms;
      }
      postMessage({ flopsPerRound: exports.flops_per_round() });
      return;
    }
    const t0 = performance.now();
    let sink = 0;
    for (let i = 0; i < e.data.calls; i++) sink += self.run(e.data.rounds, 1 + i);
    postMessage({ ms: performance.now() - t0, sink });
  };`;
  const url = URL.createObjectURL(new Blob([source], { type: 'text/javascript' }));
  const workers = Array.from({ length: threads }, () => new Worker(url));
  const reply = (w) => new Promise((resolve) => { w.onmessage = (e) => resolve(e.data); });
  const [{ flopsPerRound }] = await Promise.all(workers.map((w) => { const r = reply(w); w.postMessage({ module, rounds, warmUpCalls, warmUpMs }); return r; }));
  const gflops = [];
  for (let m = 0; m < measurements; m++) {
    const done = await Promise.all(workers.map((w) => { const r = reply(w); w.postMessage({ rounds, calls }); return r; }));
    const flops = threads * calls * rounds * flopsPerRound;
    gflops.push(flops / (Math.max(...done.map((d) => d.ms)) / 1000) / 1e9);
  }
  workers.forEach((w) => w.terminate());
  return gflops;
}

const browser = await launch();
try {
  const page = await browser.newPage();
  const blank = new URL('__simd-peak.html', URL_).href;
  await page.route(blank, (route) => route.fulfill({ contentType: 'text/html', body: '<!doctype html><title>simd peak</title>' }));
  await page.goto(blank);
  for (const [build, file] of BUILDS) {
    const bytes = readFileSync(file).toString('base64');
    for (const threads of THREADS) {
      const runs = await page.evaluate(measure, { bytes, threads, rounds: ROUNDS, calls: CALLS, measurements: MEASUREMENTS, warmUpCalls: WARM_UP_CALLS, warmUpMs: WARM_UP_MS });
      if (!runs) {
        process.stdout.write(JSON.stringify({ kind: 'page-peak', build, supported: false }) + '\n');
        break;
      }
      const sorted = [...runs].sort((a, b) => a - b);
      process.stdout.write(JSON.stringify({ kind: 'page-peak', build, supported: true, threads, gflops: sorted[sorted.length >> 1], gflops_runs: runs }) + '\n');
    }
  }
} finally {
  await browser.close();
}

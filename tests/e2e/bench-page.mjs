#!/usr/bin/env node
// Page benchmark: saliency on a text of exactly TOKENS tokens, RUNS times, in headless Chromium.
//
//   node tests/e2e/bench-page.mjs URL [TOKENS=64] [RUNS=5]
//
// Prints progress to stderr and one JSON line to stdout: medians of the page's timings
// (data-load-ms, data-forward-ms, data-attribute-ms, data-total-ms), the largest worker wasm memory,
// the token count actually used, each run's figures, and the peak memory (PSS) of the whole
// browser (all Chromium processes) sampled during the benchmark.
import { chromium } from 'playwright-core';
import { readFileSync, readdirSync } from 'node:fs';
import { launchOptions, recorder, mark, settle, snapshot } from './lib.mjs';

const URL_ = process.argv[2] || 'http://127.0.0.1:8080/';
const TOKENS = Number(process.argv[3] || 64);
const RUNS = Number(process.argv[4] || 5);
const S = 1000 * Number(process.env.E2E_TIMEOUT_SCALE || 1);
const log = (m) => process.stderr.write(`[bench-page] ${m}\n`);

const PARAGRAPH = `The history of the city begins long before the first bridge was built across the river. \
Farmers and fishermen lived along its banks for centuries, trading grain, salt and wool with travellers who \
came down from the mountains every spring. When the old road between the northern ports and the southern \
markets was paved, merchants began to settle near the crossing, and a small town grew around the market \
square. Its people built a stone church, a town hall with a tall clock tower, and narrow streets lined with \
workshops. Over the following years the town became known for its printers, its bell founders and its \
careful clockmakers, whose work was sold in distant capitals. Today visitors walk along the same streets, \
climb the tower to look over the red roofs, and sit in the square to watch the evening light fade over the water.`;

// ---- memory of the whole browser: sum of PSS over the browser process and its descendants ----
function descendants(root) {
  const kids = new Map();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (!kids.has(ppid)) kids.set(ppid, []);
      kids.get(ppid).push(Number(d));
    } catch { /* exited */ }
  }
  const out = [], todo = [root];
  while (todo.length) { const p = todo.pop(); out.push(p); todo.push(...(kids.get(p) || [])); }
  return out;
}
function pssBytes(pids) {
  let kb = 0;
  for (const p of pids) {
    try { kb += Number(/^Pss:\s+(\d+)/m.exec(readFileSync(`/proc/${p}/smaps_rollup`, 'utf8'))[1]); } catch { /* gone */ }
  }
  return kb * 1024;
}

const median = (xs) => {
  const v = xs.filter(Number.isFinite).sort((a, b) => a - b);
  if (!v.length) return null;
  return v.length % 2 ? v[(v.length - 1) / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
};

const server = await chromium.launchServer(launchOptions());
const browserPid = server.process().pid;
let peakPss = 0;
const sampler = setInterval(() => { peakPss = Math.max(peakPss, pssBytes(descendants(browserPid))); }, 200);
let exitCode = 0;
try {
  const browser = await chromium.connect(server.wsEndpoint());
  const page = await browser.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  await page.addInitScript(recorder);
  await page.goto(URL_, { timeout: 30 * S });
  let snap = await settle(page, 0, 150 * S);
  if (snap.state !== 'done') throw new Error(`page did not reach done: ${snap.state} ${snap.message}`);
  log(`model loaded, first run done (load ${snap.timings?.load} ms)`);

  // Find a prefix of the paragraph (whole words) that is exactly TOKENS tokens long, counting the
  // page's [data-testid=token] elements (each try is one run).
  const words = PARAGRAPH.split(' ');
  const setText = async (text) => {
    const m = await mark(page);
    await page.fill('[data-testid=editor]', text);
    const s = await settle(page, m, 90 * S);
    if (s.state !== 'done') throw new Error(`run failed: ${s.state} ${s.message}`);
    return s;
  };
  let k = Math.min(words.length, Math.round(TOKENS / 1.3)), best = null;
  const tried = new Map();
  for (let i = 0; i < 12 && !tried.has(k); i++) {
    const s = await setText(words.slice(0, k).join(' '));
    const n = s.tokens.length;
    tried.set(k, n);
    log(`${k} words -> ${n} tokens`);
    if (!best || Math.abs(n - TOKENS) < Math.abs(best.n - TOKENS) || (n === TOKENS)) best = { k, n };
    if (n === TOKENS) break;
    let next = k + Math.round((TOKENS - n) * (k / Math.max(n, 1)));
    if (next === k) next += n < TOKENS ? 1 : -1;
    k = Math.max(1, Math.min(words.length, next));
    if (tried.has(k)) {  // oscillating between counts: step one word at a time toward the target
      k = best.k + (best.n < TOKENS ? 1 : -1);
      if (tried.has(k) || k < 1 || k > words.length) break;
    }
  }
  const text = words.slice(0, best.k).join(' ');
  if (best.n !== TOKENS) log(`no word prefix has exactly ${TOKENS} tokens; using ${best.n}`);
  snap = await setText(text);

  const runs = [];
  for (let r = 0; r < RUNS; r++) {
    const m = await mark(page);
    await page.locator('[data-testid=run]').click({ timeout: 30 * S });
    const s = await settle(page, m, 90 * S);
    if (s.state !== 'done') throw new Error(`run ${r + 1} failed: ${s.state} ${s.message}`);
    const t = s.timings || {};
    const row = { load_ms: Number(t.load), forward_ms: Number(t.forward), attribute_ms: Number(t.attribute),
                  total_ms: Number(t.total), wasm_memory_bytes: Number(t.memory), tokens: s.tokens.length };
    runs.push(row);
    log(`run ${r + 1}/${RUNS}: ${JSON.stringify(row)}`);
  }
  peakPss = Math.max(peakPss, pssBytes(descendants(browserPid)));
  const result = {
    url: URL_, chromium: browser.version(), tokens: snap.tokens.length, tokens_requested: TOKENS, runs: RUNS,
    load_ms: median(runs.map((x) => x.load_ms)),
    forward_ms: median(runs.map((x) => x.forward_ms)),
    attribute_ms: median(runs.map((x) => x.attribute_ms)),
    total_ms: median(runs.map((x) => x.total_ms)),
    wasm_memory_max_bytes: Math.max(...runs.map((x) => x.wasm_memory_bytes).filter(Number.isFinite)),
    browser_pss_peak_bytes: peakPss,
    page_errors: errors,
    per_run: runs,
  };
  console.log(JSON.stringify(result));
  await browser.close();
} catch (e) {
  log(`FAILED: ${e.message}`);
  exitCode = 1;
} finally {
  clearInterval(sampler);
  await server.close().catch(() => {});
}
process.exit(exitCode);

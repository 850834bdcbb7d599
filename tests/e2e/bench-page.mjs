#!/usr/bin/env node
// Page benchmark in headless Chromium: each method at each text length, the wasm memory after each
// method, and the time from opening the page to its first highlight with the model already in the
// browser's cache.
//
//   node tests/e2e/bench-page.mjs --url URL --texts FILE [--tokens 16,64,256,512]
//        [--methods saliency,grad_x_input,integrated_gradients,occlusion] [--runs 16:5,64:5,256:3,512:1]
//        [--steps 32] [--cap-s 300] [--config-budget-s 90] [--part-budget-s S] [--must 64:saliency,..]
//        [--timeout-s 900] [--serve-log FILE]
//
// --texts: JSON lines from `salient bench --texts-only` (a text of exactly N tokens and the FLOP
// estimate of each method on it), so the page gets the same inputs as the native benchmark.
//
// Prints one JSON line per result on stdout (progress on stderr), as soon as it is known, so a
// killed run keeps what it measured:
//   {"kind":"browser"}  the Chromium version and profile
//   {"kind":"visit"}    a page visit: time from navigation to the first highlight (status done),
//                       the model load time and how the model was served (200 or 304)
//   {"kind":"page-run"} one (tokens, method): status ok | failed | skipped, the reason, each run's
//                       data-forward-ms / data-attribute-ms / data-total-ms / data-wasm-memory /
//                       data-threads / data-relaxed-simd, and the whole browser's peak PSS during it
//
// The page's contract used here: [data-testid=status][data-state], [data-testid=editor],
// [data-testid=method], [data-testid=timings] (data-*-ms, data-wasm-memory, data-threads,
// data-relaxed-simd), and
// [data-testid=param-steps] when present. Runs after the first are started with Ctrl+Enter in the
// editor. Every (tokens, method) gets a fresh tab in the same browser profile (the model comes
// from the browser's cache), so the wasm memory read after it is that method's, not an earlier
// one's: wasm memory only grows.
import { chromium } from 'playwright-core';
import { readFileSync, readdirSync, mkdtempSync, rmSync, existsSync, statSync, openSync, readSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CHROMIUM, CHROMIUM_ARGS, S, opt, recorder, mark } from './lib.mjs';

// ---- arguments -------------------------------------------------------------------------------
const argv = process.argv.slice(2);
const list = (s) => String(s).split(',').map((x) => x.trim()).filter(Boolean);
const URL_ = opt('url', argv[0] && !argv[0].startsWith('--') ? argv[0] : 'http://127.0.0.1:8080/');
const TEXTS = opt('texts', null);
const TOKENS = list(opt('tokens', '16,64,256,512')).map(Number);
const METHODS = list(opt('methods', 'saliency,grad_x_input,integrated_gradients,occlusion'));
const RUNS = Object.fromEntries(list(opt('runs', '16:5,64:5,256:3,512:1')).map((p) => p.split(':').map(Number)));
const STEPS = Number(opt('steps', 32));
const CAP_S = Number(opt('cap-s', 300));                 // skip a configuration whose one run is estimated longer
const CONFIG_BUDGET_S = Number(opt('config-budget-s', 90)); // fewer runs when runs × estimate exceed this
const TIMEOUT_S = Number(opt('timeout-s', 900));          // the longest any one run may take
const PART_BUDGET_S = Number(opt('part-budget-s', 1e9));   // after this, only the "must" configurations run
const MUST = new Set(list(opt('must', '')));                // "64:integrated_gradients": never skipped
const SERVE_LOG = opt('serve-log', null);
const PAGE_DEFAULT_STEPS = 128;                            // MethodParams::default().steps (a budget)
const log = (m) => process.stderr.write(`[bench-page ${new Date().toISOString().slice(11, 19)}] ${m}\n`);
const emit = (o) => process.stdout.write(JSON.stringify(o) + '\n');

// ---- texts of exact token counts (from the native CLI) -----------------------------------------
const texts = new Map();
if (TEXTS && existsSync(TEXTS)) {
  for (const line of readFileSync(TEXTS, 'utf8').split('\n')) {
    if (!line.trim().startsWith('{')) continue;
    const t = JSON.parse(line);
    if (t.kind === 'text') texts.set(t.tokens_requested, t);
  }
}
const PARAGRAPH = 'The river town woke slowly that morning. Fishermen pulled their boats onto the gravel, counting the night\'s catch while gulls argued over the scraps. ';
function textFor(n) {
  if (texts.has(n)) return texts.get(n);
  // No native texts: an approximate length (about 1.3 tokens per word), token count unknown.
  const words = PARAGRAPH.repeat(60).split(' ');
  return { tokens_requested: n, tokens: null, text: words.slice(0, Math.round(n / 1.3)).join(' '), flops: null };
}

// ---- memory of the whole browser: PSS of every process of this profile ------------------------
function profilePids(dir) {
  const pids = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try { if (readFileSync(`/proc/${d}/cmdline`, 'utf8').includes(dir)) pids.push(Number(d)); } catch { /* exited */ }
  }
  return pids;
}
function pssBytes(pids) {
  let kb = 0;
  for (const p of pids) {
    try { kb += Number(/^Pss:\s+(\d+)/m.exec(readFileSync(`/proc/${p}/smaps_rollup`, 'utf8'))[1]); } catch { /* gone */ }
  }
  return kb * 1024;
}

// ---- the server's log: how the model was served on a visit (200 = downloaded, 304 = cached) ----
let serveLogOffset = 0;
function serveLogSince() {
  if (!SERVE_LOG || !existsSync(SERVE_LOG)) return null;
  const size = statSync(SERVE_LOG).size, buf = Buffer.alloc(Math.max(0, size - serveLogOffset));
  const fd = openSync(SERVE_LOG, 'r'); readSync(fd, buf, 0, buf.length, serveLogOffset); closeSync(fd);
  serveLogOffset = size;
  const counts = {};
  for (const m of buf.toString('utf8').matchAll(/"GET [^"]*\.gguf[^"]*" (\d{3})/g)) counts[m[1]] = (counts[m[1]] || 0) + 1;
  return counts;
}

const median = (xs) => {
  const v = xs.filter(Number.isFinite).sort((a, b) => a - b);
  if (!v.length) return null;
  return v.length % 2 ? v[(v.length - 1) / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
};
const num = (v) => (v === null || v === undefined || v === '' ? NaN : Number(v));

// ---- page helpers (only the contract's test ids) -------------------------------------------------
const readState = (page) => page.evaluate(() => {
  const q = (s) => document.querySelector(`[data-testid=${s}]`);
  const a = (e, n) => (e ? e.getAttribute(n) : null);
  const status = q('status'), tm = q('timings'), steps = q('param-steps'), method = q('method');
  const firstDone = window.__salient.states.find((s) => s.state === 'done');
  return {
    state: a(status, 'data-state'), message: status ? status.textContent.trim() : '',
    method: method ? method.value : null, steps: steps ? steps.value : null,
    timings: tm ? { load: a(tm, 'data-load-ms'), forward: a(tm, 'data-forward-ms'), attribute: a(tm, 'data-attribute-ms'),
                    total: a(tm, 'data-total-ms'), memory: a(tm, 'data-wasm-memory'), threads: a(tm, 'data-threads'),
                    relaxedSimd: a(tm, 'data-relaxed-simd') } : null,
    firstDoneAt: firstDone ? firstDone.t : null,
  };
});

// Waits until, after recorder transition `since`, the status reached done or error and stayed
// settled for `quietMs` (longer than the page's 400 ms edit debounce). Resolves to
// { settled, crashed } — never throws for a timeout or a crashed tab.
async function settleRun(h, since, timeoutMs, quietMs = 800) {
  const wait = h.page.waitForFunction(([n, quiet]) => {
    const all = window.__salient.states, after = all.slice(n), last = all[all.length - 1];
    return after.some((s) => s.state === 'done' || s.state === 'error')
      && last && (last.state === 'done' || last.state === 'error' || last.state === 'ready')
      && performance.now() - last.t >= quiet;
  }, [since, quietMs], { timeout: timeoutMs, polling: 200 }).then(() => ({ settled: true }), (e) => ({ settled: false, error: e.message }));
  const crash = new Promise((resolve) => { h.onCrash = () => resolve({ settled: false, crashed: true }); });
  return Promise.race([wait, crash]);
}

// The reason a run failed, from the status message, the worker's console and a tab crash. A worker
// that runs out of wasm memory traps (`unreachable` from Rust's allocation-failure abort, or a
// RangeError from memory.grow) without a panic message.
function classify(h, message) {
  const text = `${message || ''} ${h.workerErrors.join(' | ')}`;
  if (h.crashed) return 'out of memory (the tab crashed)';
  if (/out of memory|memory allocation|allocation failed|Cannot allocate|RangeError[^|]*(Memory|memory|buffer)|WebAssembly\.Memory/i.test(text)) {
    return `out of memory (${message})`;
  }
  if (/unreachable/i.test(text) && !/panicked at/i.test(text)) return `out of memory (the worker trapped without a panic: ${message})`;
  // The page's own memory check refuses a run it estimates would not fit, before starting it.
  if (/needs about .* of memory/i.test(message || '')) return `out of memory (refused by the page before running: ${message})`;
  return `failed: ${message}`;
}

// ---- main ----------------------------------------------------------------------------------------
const profile = mkdtempSync(join(tmpdir(), 'salient-bench-profile-'));
// BENCH_CHROMIUM_ARGS: extra flags, e.g. --js-flags=--wasm-max-mem-pages=6400 to test the
// out-of-memory path with a 400 MiB wasm memory limit.
const EXTRA_ARGS = (process.env.BENCH_CHROMIUM_ARGS || '').split(' ').filter(Boolean);
const context = await chromium.launchPersistentContext(profile, {
  executablePath: CHROMIUM, headless: true, args: [...CHROMIUM_ARGS, ...EXTRA_ARGS], viewport: { width: 1200, height: 900 },
});
// Sampled once a second (the process list every 5 s): reading smaps_rollup of a multi-GB renderer
// costs CPU that the 2-core machine would take from the benchmark itself.
let pssPeak = 0, pssSince = 0, pids = [], sampled = 0;
const sampler = setInterval(() => {
  if (sampled++ % 5 === 0) pids = profilePids(profile);
  const p = pssBytes(pids);
  pssPeak = Math.max(pssPeak, p); pssSince = Math.max(pssSince, p);
}, 1000);
let exitCode = 0;

async function openPage(timeoutMs) {
  const page = await context.newPage();
  const h = { page, errors: [], workerErrors: [], crashed: false, onCrash: null };
  page.on('pageerror', (e) => h.errors.push(e.message));
  page.on('console', (m) => { if (m.type() === 'error') h.errors.push(m.text()); });
  page.on('worker', (w) => w.on('console', (m) => { if (m.type() === 'error' || /panicked|memory/i.test(m.text())) h.workerErrors.push(m.text().slice(0, 300)); }));
  page.on('crash', () => { h.crashed = true; if (h.onCrash) h.onCrash(); });
  // Settings a page might keep between visits must not leak from one configuration to the next;
  // the HTTP and Cache API caches (the model) stay.
  await page.addInitScript(() => { try { localStorage.clear(); sessionStorage.clear(); } catch { /* none */ } });
  await page.addInitScript(recorder);
  const t0 = Date.now();
  await page.goto(URL_, { timeout: 60 * S });
  const r = await settleRun(h, 0, timeoutMs);
  const s = h.crashed ? null : await readState(page);
  if (!r.settled || !s || s.state !== 'done') {
    const why = h.crashed ? 'the tab crashed' : !r.settled ? `no first result in ${Math.round(timeoutMs / 1000)} s` : `${s.state}: ${s.message}`;
    await page.close().catch(() => {});
    throw new Error(`page did not load: ${why}`);
  }
  h.wallToFirstDone = Date.now() - t0;
  h.first = s;
  return h;
}

// One user action that starts a run, then its result. `act` changes the page.
async function runAfter(h, act, timeoutMs) {
  const m = await mark(h.page);
  await act();
  const r = await settleRun(h, m, timeoutMs);
  if (h.crashed) return { ok: false, reason: classify(h, 'tab crashed') };
  if (!r.settled) return { ok: false, timeout: true, reason: `timeout: no result after ${Math.round(timeoutMs / 1000)} s` };
  const s = await readState(h.page);
  if (s.state !== 'done') return { ok: false, reason: classify(h, s.message) };
  return { ok: true, s };
}

try {
  emit({ kind: 'browser', profile: 'persistent (fresh temporary directory, reused by every visit)',
         args: [...CHROMIUM_ARGS, ...EXTRA_ARGS] });

  // ---- visits: the first warms the browser's caches, the second measures the cached open ----
  serveLogSince();
  for (const visit of [1, 2]) {
    pssSince = 0;
    const h = await openPage(240 * S);
    const t = h.first.timings || {};
    const served = serveLogSince();
    const result = {
      kind: 'visit', visit, cached: visit === 2,
      first_highlight_ms: h.first.firstDoneAt, first_highlight_wall_ms: h.wallToFirstDone,
      load_ms: num(t.load), forward_ms: num(t.forward), attribute_ms: num(t.attribute), total_ms: num(t.total),
      wasm_memory_bytes: num(t.memory), model_responses: served, browser_pss_peak_bytes: pssSince, page_errors: h.errors,
    };
    emit(result);
    log(`visit ${visit}: first highlight ${Math.round(result.first_highlight_ms)} ms after navigation (load ${t.load} ms; model served ${JSON.stringify(served)})`);
    await h.page.close();
  }

  // ---- (tokens, method) configurations -----------------------------------------------------------
  // Achieved GFLOP/s by token count: per method, forward+backward (saliency, grad_x_input), forward.
  const rate = { fb: new Map(), f: new Map() };
  const rateAt = (kind, n) => {
    const known = [...(rate[kind] || new Map()).entries()].filter(([k]) => k <= n).sort((a, b) => b[0] - a[0]);
    return known.length ? known[0] : null;   // [tokens, GFLOP/s]
  };
  // The largest size measured up to n; there, the method's own rate before a related one's.
  const bestRate = (method, n) => {
    const own = rateAt(method, n), related = rateAt(method === 'occlusion' ? 'f' : 'fb', n);
    const pick = !own ? related : !related ? own : own[0] >= related[0] ? own : related;
    return pick ? pick[1] : null;
  };
  // Without the native FLOP estimates: a step of integrated gradients ≈ one saliency run, an
  // occluded token ≈ one forward pass, at the same length (or scaled up from a shorter one).
  const measured = new Map();   // `${n}:${method}` -> result
  const roughEstimate = (n, method) => {
    const base = [...measured.values()].filter((x) => x.status === 'ok' && x.tokens_requested <= n && x.method === 'saliency')
      .sort((a, b) => b.tokens_requested - a.tokens_requested)[0];
    if (!base) return null;
    const scale = n / base.tokens_requested;
    if (method === 'integrated_gradients') return (STEPS + 1) * base.total_ms * scale / 1000;
    if (method === 'occlusion') return n * base.forward_ms * scale / 1000;
    return base.total_ms * scale / 1000;
  };
  const T_CONFIGS = Date.now();
  for (const n of TOKENS) {
    const t = textFor(n);
    for (const method of METHODS) {
      const base = { kind: 'page-run', tokens_requested: n, tokens: t.tokens, method,
                     steps: method === 'integrated_gradients' ? STEPS : null };
      const flops = t.flops ? t.flops[method] : null;
      const r = bestRate(method, n);
      let estimateS = flops && r ? flops / (r * 1e9) : null;
      if (estimateS === null && !t.flops) estimateS = roughEstimate(n, method);
      const must = MUST.has(`${n}:${method}`);
      const estText = estimateS !== null ? `estimated ${(estimateS / 60).toFixed(1)} min per run` : null;
      const skip = must ? null
        : estimateS !== null && estimateS > CAP_S ? `skipped (${estText})`
        : (Date.now() - T_CONFIGS) / 1000 >= PART_BUDGET_S ? `skipped (the page part's budget of ${Math.round(PART_BUDGET_S / 60)} min was spent${estText ? '; ' + estText : ''})`
        : null;
      if (skip) {
        emit({ ...base, status: 'skipped', estimate_s: estimateS, reason: skip });
        log(`${n} tokens ${method}: ${skip}`);
        continue;
      }
      const planned = RUNS[n] || 1;
      const runs = estimateS ? Math.max(1, Math.min(planned, Math.floor(CONFIG_BUDGET_S / estimateS))) : planned;
      const runTimeout = Math.min(TIMEOUT_S, Math.max(120, 4 * (estimateS || 60))) * S;
      log(`${n} tokens ${method}: ${runs} run(s)${estimateS ? `, estimated ${estimateS.toFixed(1)} s each` : ''}`);
      pssSince = 0;
      const rows = [], notes = [];
      let status = 'ok', reason = null, h = null;
      try {
        h = await openPage(240 * S);
        if (method !== h.first.method) {
          // Switching methods reruns the shown text. Integrated gradients on the example would cost
          // 32 gradient passes and a large batch (memory that would then be counted as this
          // configuration's): switch it on a one-word text instead.
          if (method === 'integrated_gradients') {
            const small = await runAfter(h, () => h.page.fill('[data-testid=editor]', 'Hello'), 120 * S);
            if (!small.ok) throw new Error(`setup: ${small.reason}`);
          }
          const sel = await runAfter(h, () => h.page.selectOption('[data-testid=method]', method), 300 * S);
          if (!sel.ok) throw new Error(`setup: ${sel.reason}`);
        }
        if (method === 'integrated_gradients') {
          const steps = h.page.locator('[data-testid=param-steps]');
          if (await steps.count()) {
            if (Number(await steps.inputValue()) !== STEPS) {
              const st = await runAfter(h, () => steps.fill(String(STEPS)), 300 * S);
              if (!st.ok) throw new Error(`setup: ${st.reason}`);
            }
          } else if (STEPS !== PAGE_DEFAULT_STEPS) {
            notes.push(`no [data-testid=param-steps]: ran the page's default ${PAGE_DEFAULT_STEPS} steps`);
            base.steps = PAGE_DEFAULT_STEPS;
          }
        }
        for (let i = 0; i < runs; i++) {
          const act = i === 0
            ? () => h.page.fill('[data-testid=editor]', t.text)
            : async () => { await h.page.focus('[data-testid=editor]'); await h.page.keyboard.press('Control+Enter'); };
          const res = await runAfter(h, act, runTimeout);
          if (!res.ok) { status = 'failed'; reason = res.reason; break; }
          const tm = res.s.timings || {};
          const row = { forward_ms: num(tm.forward), attribute_ms: num(tm.attribute), total_ms: num(tm.total), wasm_memory_bytes: num(tm.memory),
                        threads: num(tm.threads), relaxed_simd: tm.relaxedSimd === 'true' };
          rows.push(row);
          log(`  run ${i + 1}/${runs}: ${JSON.stringify(row)}`);
        }
      } catch (e) {
        status = 'failed'; reason = h && h.crashed ? classify(h, e.message) : String(e.message).split('\n')[0];
      }
      if (h) await h.page.close().catch(() => {});
      const result = {
        ...base, status, reason, runs: rows.length, runs_planned: runs, estimate_s: estimateS,
        forward_ms: median(rows.map((x) => x.forward_ms)), attribute_ms: median(rows.map((x) => x.attribute_ms)),
        total_ms: median(rows.map((x) => x.total_ms)), threads: rows.length ? rows[0].threads : null,
        relaxed_simd: rows.length ? rows[0].relaxed_simd : null,
        wasm_memory_max_bytes: rows.length ? Math.max(...rows.map((x) => x.wasm_memory_bytes).filter(Number.isFinite)) : null,
        browser_pss_peak_bytes: pssSince, per_run: rows, notes, page_errors: h ? h.errors.slice(0, 5) : [],
      };
      emit(result);
      measured.set(`${n}:${method}`, result);
      if (status !== 'ok') log(`${n} tokens ${method}: ${reason}`);
      if (status === 'ok' && flops) {
        if (method === 'saliency' || method === 'grad_x_input') rate.fb.set(n, Math.max(rate.fb.get(n) || 0, flops / (result.total_ms * 1e6)));
        (rate[method] = rate[method] || new Map()).set(n, flops / (result.total_ms * 1e6));
        const fwd = t.flops.forward;
        if (fwd && result.forward_ms) rate.f.set(n, Math.max(rate.f.get(n) || 0, fwd / (result.forward_ms * 1e6)));
      }
    }
  }
  emit({ kind: 'browser-memory', browser_pss_peak_bytes: pssPeak });
} catch (e) {
  log(`FAILED: ${e.message}`);
  exitCode = 1;
} finally {
  clearInterval(sampler);
  await context.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
}
process.exit(exitCode);

// Shared by the e2e files: browser launch, a state recorder injected into the page, waiting for
// runs to settle, a snapshot of the page's contract elements, and the test harness (createSuite).
import { chromium } from 'playwright-core';
import { writeFileSync, appendFileSync, readdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { once } from 'node:events';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

// What every test file reads from its command line (`node FILE URL [DIST_DIR]`) and environment:
// the page's URL, the built page, where artifacts go, and the timeout scale (ms per second).
export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const URL_ = process.argv[2] || 'http://127.0.0.1:8080/';
export const DIST = resolve(process.argv[3] || join(ROOT, 'dist'));
export const OUT = resolve(process.env.TEST_OUT || join(ROOT, 'test-out'));
export const S = 1000 * Number(process.env.E2E_TIMEOUT_SCALE || 1);
// `--name value` from the command line (the benchmark scripts' options), else `dflt`.
export const opt = (name, dflt) => {
  const argv = process.argv.slice(2), i = argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < argv.length ? argv[i + 1] : dflt;
};

// The default model, as default-model.env declares it (KEY=value lines): its file name, size,
// digest, and where the page serves it.
const declared = Object.fromEntries(readFileSync(join(ROOT, 'default-model.env'), 'utf8').split('\n')
  .filter((line) => /^[A-Z][A-Z0-9_]*=/.test(line)).map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1).trim()]));
export const MODEL_FILE = declared.MODEL_FILE;
export const MODEL_BYTES = Number(declared.MODEL_BYTES);
export const MODEL_SHA256 = declared.MODEL_SHA256;
export const MODEL_URL = `models/${MODEL_FILE}`;

// The same GGUF with the u32 metadata `key` set to `value` (the key is found with its u64 length
// prefix, so `…head_count` does not match `…head_count_kv`).
export function withU32(gguf, key, value) {
  const name = Buffer.from(key);
  const needle = Buffer.alloc(8 + name.length);
  needle.writeBigUInt64LE(BigInt(name.length));
  name.copy(needle, 8);
  const at = gguf.indexOf(needle);
  if (at < 0) throw new Error(`no ${key} in the model`);
  const type = at + needle.length;
  if (gguf.readUInt32LE(type) !== 4) throw new Error(`${key} is not a u32`);
  const copy = Buffer.from(gguf);
  copy.writeUInt32LE(value, type + 4);
  return copy;
}

export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
export const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-dev-shm-usage'];

// playwright passes --headless itself and gives each launch a fresh temporary user-data-dir.
export const launchOptions = (args = CHROMIUM_ARGS) => ({ executablePath: CHROMIUM, headless: true, args });
export const launch = (args) => chromium.launch(launchOptions(args));
// WebGPU on SwiftShader (Chromium's software Vulkan): slow, so the tests that use it stay small.
export const WEBGPU_ARGS = [...CHROMIUM_ARGS.filter((a) => a !== '--disable-gpu'), '--enable-unsafe-webgpu',
  '--enable-features=Vulkan', '--use-vulkan=swiftshader', '--use-webgpu-adapter=swiftshader'];

// Runs in the page before its scripts: records every data-state transition of the status element
// (also ones that happen within one task), the progress bar's byte counts while a model loads,
// and each of its readings while a run computes (runProgress: done, expected, page time).
export function recorder() {
  const rec = (window.__salient = { states: [], texts: [], maxLoaded: 0, total: null, progressSeen: false, runProgress: [] });
  const push = (state, text) => {
    const last = rec.states[rec.states.length - 1];
    if (state != null && (!last || last.state !== state)) rec.states.push({ state, text: text || '', t: performance.now() });
  };
  const progress = () => {
    const p = document.querySelector('[data-testid=progress]');
    if (!p) return;
    const l = Number(p.getAttribute('data-loaded')), t = p.getAttribute('data-total');
    if (p.getAttribute('data-of') === 'run') {
      const last = rec.runProgress[rec.runProgress.length - 1];
      if (!last || last.done !== l || last.expected !== Number(t)) rec.runProgress.push({ done: l, expected: Number(t), t: performance.now() });
      return;
    }
    rec.progressSeen = true;
    if (Number.isFinite(l)) rec.maxLoaded = Math.max(rec.maxLoaded, l);
    if (t != null && t !== '') rec.total = Number(t);
  };
  new MutationObserver((records) => {
    records.forEach((r, i) => {
      if (r.type !== 'attributes' || r.attributeName !== 'data-state' || r.target.getAttribute('data-testid') !== 'status') return;
      const next = records.slice(i + 1).find((q) => q.target === r.target && q.attributeName === 'data-state');
      push(next ? next.oldValue : r.target.getAttribute('data-state'), next ? '' : r.target.textContent);
    });
    const s = document.querySelector('[data-testid=status]');
    if (s) {
      const last = rec.states[rec.states.length - 1];
      if (!last || last.state !== s.getAttribute('data-state')) push(s.getAttribute('data-state'), s.textContent);
      else last.text = s.textContent;
      // every rendered status message (messages set and replaced within one task are never rendered)
      const lt = rec.texts[rec.texts.length - 1], state = s.getAttribute('data-state'), text = s.textContent.trim();
      if (!lt || lt.state !== state || lt.text !== text) rec.texts.push({ state, text, t: performance.now() });
    }
    progress();
  }).observe(document, { subtree: true, childList: true, characterData: true, attributes: true, attributeOldValue: true,
                         attributeFilter: ['data-state', 'data-loaded', 'data-total', 'data-of'] });
}

// CPU seconds used so far by the browsers this test process started: every descendant process
// of it, all threads (Web Workers included), read from /proc (Linux).
export function browserCpuSeconds() {
  const children = new Map(), cpu = new Map();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');   // f[0] is field 3 (state)
      const ppid = Number(f[1]);
      if (!children.has(ppid)) children.set(ppid, []);
      children.get(ppid).push(Number(d));
      cpu.set(Number(d), Number(f[11]) + Number(f[12]));           // utime + stime, in ticks
    } catch { /* exited */ }
  }
  let ticks = 0;
  const visit = (pid) => (children.get(pid) || []).forEach((c) => { ticks += cpu.get(c) || 0; visit(c); });
  visit(process.pid);
  return ticks / 100;   // USER_HZ is 100 on Linux
}

// A page on another origin (a blog embedding Salient, say): `html` served at `/` of a server on
// `host` (127.0.0.1 or localhost, another origin than the page's), until `close()`.
export async function hostPage(html, host = '127.0.0.1') {
  const server = createServer((req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
    res.end(html);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { url: `http://${host}:${server.address().port}/`, close: () => server.close() };
}

// The page's folded sections: the model panel (folded to one line once a model is loaded) and
// the collapsible panels by name (`data-panel`); opening one is what a click on its title does.
export const showModelPanel = (page) => page.evaluate(() => {
  const d = document.querySelector('[data-testid=model-panel]');
  if (d && !d.open) d.open = true;
});
export const openPanel = (page, name) => page.evaluate((n) => {
  const d = document.querySelector(`[data-testid=panel][data-panel=${n}]`);
  if (d && !d.open) d.open = true;
}, name);

export const mark = (page) => page.evaluate(() => window.__salient.states.length);
export const states = (page, since = 0) => page.evaluate((n) => window.__salient.states.slice(n), since);
export const pageNow = (page) => page.evaluate(() => performance.now());
// the progress bar's readings during runs since page time t
export const runProgressSince = (page, t) => page.evaluate((t0) => window.__salient.runProgress.filter((x) => x.t >= t0), t);
// status messages rendered since page time t
export const textsSince = (page, t) => page.evaluate((t0) => window.__salient.texts.filter((x) => x.t >= t0), t);

// Wait until, after transition index `since`, the page reached done or error and stayed settled
// (no state change for `quietMs`, longer than the ~400 ms edit debounce).
export async function settle(page, since, timeout, quietMs = 800) {
  try {
    await page.waitForFunction(([n, quiet]) => {
      const all = window.__salient.states, after = all.slice(n), last = all[all.length - 1];
      return after.some((s) => s.state === 'done' || s.state === 'error')
        && last && (last.state === 'done' || last.state === 'error' || last.state === 'ready')
        && performance.now() - last.t >= quiet;
    }, [since, quietMs], { timeout, polling: 100 });
  } catch (e) {
    if (!/Timeout/i.test(e.message)) throw e;
  }
  return snapshot(page);
}

export const snapshot = (page) => page.evaluate(() => {
  const q = (s, root = document) => root.querySelector(`[data-testid=${s}]`);
  const qa = (s, root = document) => [...root.querySelectorAll(`[data-testid=${s}]`)];
  const a = (e, n) => (e ? e.getAttribute(n) : null);
  const status = q('status'), topk = q('topk'), target = q('target'), tm = q('timings'), ed = q('editor');
  return {
    state: a(status, 'data-state'), message: status ? status.textContent.trim() : null,
    editor: ed ? ed.value : null,
    tokens: qa('token').map((e) => ({ index: a(e, 'data-index'), id: a(e, 'data-token-id'), score: a(e, 'data-score'),
                                      norm: a(e, 'data-norm'), text: e.textContent })),
    preds: topk ? qa('prediction', topk).map((e) => ({ id: a(e, 'data-token-id'), prob: a(e, 'data-prob'), text: e.textContent.trim() })) : [],
    target: target ? { id: a(target, 'data-token-id'), text: target.textContent.trim() } : null,
    timings: tm ? { load: a(tm, 'data-load-ms'), forward: a(tm, 'data-forward-ms'), attribute: a(tm, 'data-attribute-ms'),
                    total: a(tm, 'data-total-ms'), memory: a(tm, 'data-wasm-memory'), threads: a(tm, 'data-threads'), relaxedSimd: a(tm, 'data-relaxed-simd'),
                    backend: a(tm, 'data-backend'), adapter: a(tm, 'data-adapter'), notOnGpu: a(tm, 'data-not-on-gpu'), shaderMs: a(tm, 'data-shader-ms'),
                    text: tm.textContent.trim() } : null,
    progress: { seen: window.__salient.progressSeen, maxLoaded: window.__salient.maxLoaded, total: window.__salient.total },
  };
});


// ---------------------------------------------------------------------------------------------
// A test file's harness: `ok`/`FAIL` lines, a console log of page and workers, screenshots, and
// pages opened with the recorder, a watchdog, and the closing summary (`finish`).
// `createSuite({ url, out, log, name, watchdogS })` returns closures, so a test file destructures
// what it uses.
// `args`: the browser's command line (default CHROMIUM_ARGS).
export function createSuite({ url, out, log, name, watchdogS, args }) {
  const t0 = Date.now();
  const stamp = () => ((Date.now() - t0) / 1000).toFixed(1).padStart(6);
  writeFileSync(log, `# e2e ${new Date().toISOString()} ${url}\n`);
  let browser = null, passed = 0, failed = 0, skipped = 0, shots = 0;
  // Never hang CI: past `watchdogS` (scaled like every timeout) the run ends as a failure.
  const watchdog = setTimeout(() => {
    console.log(`FAIL watchdog ${name} did not finish in ${Math.round(watchdogS * S / 1000)} s`);
    console.log(`${passed} passed, ${failed + 1} failed, ${skipped} skipped`);
    process.exit(1);
  }, watchdogS * S);
  const note = (scope, msg) => appendFileSync(log, `${stamp()} [${scope}] ${msg}\n`);
  function check(name, cond, details = '') {
    if (cond) { passed++; console.log(`ok   ${name}`); }
    else { failed++; console.log(`FAIL ${name}${details ? ' ' + details : ''}`); }
    note('check', `${cond ? 'ok' : 'FAIL'} ${name} ${cond ? '' : details}`);
    return !!cond;
  }
  // A check that cannot run here (no such hardware, say): counted as skipped, never as passed.
  function skip(name, why) {
    skipped++;
    console.log(`SKIP ${name} (${why})`);
    note('check', `SKIP ${name} (${why})`);
  }
  const info = (msg) => console.log(`     ${msg}`);
  async function shot(page, name) {
    try { await page.screenshot({ path: join(out, name), fullPage: true }); } catch (e) { note('shot', `${name}: ${e.message}`); }
  }
  const failShot = (page) => shot(page, `fail-${++shots}.png`);
  // A group of checks; an exception fails the group (and is logged) instead of aborting the run.
  async function group(name, h, fn) {
    try { await fn(); }
    catch (e) {
      check(name, false, `exception: ${e.message.split('\n')[0]}`);
      note(name, e.stack || e.message);
      if (h && h.page && !h.page.isClosed()) await failShot(h.page);
    }
  }
  function noErrors(h) {
    check(`no page/console errors (${h.scope})`, h.errors.length === 0, h.errors.slice(0, 5).join(' | '));
  }
  // setup(context): before the page opens (e.g. routes).
  // contextOptions: Playwright's (viewport, colorScheme, hasTouch, …) over a 1200 × 900 window.
  async function openPage(scope, query = '', { allowConsole = [], timeout = 30000, setup = null, contextOptions = {} } = {}) {
    browser = browser || await launch(args);
    const context = await browser.newContext({ viewport: { width: 1200, height: 900 }, ...contextOptions });
    const page = await context.newPage();
    const h = { scope, page, context, errors: [], workers: 0 };
    const consoleMsg = (where, m) => {
      const loc = m.location()?.url || '';
      note(`${scope}:${where}`, `${m.type()}: ${m.text()}${loc ? `  (${loc})` : ''}`);
      if (m.type() !== 'error') return;
      if (/\/favicon\.ico$/.test(loc)) return;                       // browser's own favicon probe
      if (allowConsole.some((re) => re.test(m.text()) || re.test(loc))) return;
      h.errors.push(`${where} console.error: ${m.text()}`);
    };
    page.on('console', (m) => { if (!m.worker()) consoleMsg('page', m); });
    page.on('worker', (w) => {
      h.workers++;
      note(scope, `worker #${h.workers} started: ${w.url()}`);
      w.on('console', (m) => consoleMsg(`worker${h.workers}`, m));
      w.on('close', () => note(scope, `worker closed: ${w.url()}`));
    });
    page.on('pageerror', (e) => { note(scope, `pageerror: ${e.stack || e.message}`); h.errors.push(`pageerror: ${e.message}`); });
    page.on('crash', () => { note(scope, 'page crashed'); h.errors.push('page crashed'); });
    page.on('requestfailed', (r) => note(scope, `request failed: ${r.url()} ${r.failure()?.errorText}`));
    page.on('response', (r) => { if (r.status() >= 400) note(scope, `HTTP ${r.status()} ${r.url()}`); });
    await page.addInitScript(recorder);
    if (setup) await setup(context);
    const target = new URL(query, url).href;
    note(scope, `goto ${target}`);
    await page.goto(target, { timeout });
    return h;
  }
  const browserVersion = async () => (browser = browser || await launch(args)).version();
  const close = async () => { if (browser) await browser.close().catch(() => {}); };
  // The last lines of a run (its wall time, then `N passed, M failed`) and its exit status.
  function finish(extra = '') {
    clearTimeout(watchdog);
    console.log(`${name} wall ${((Date.now() - t0) / 1000).toFixed(1)} s${extra}`);
    console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`);
    process.exit(failed ? 1 : 0);
  }
  return { note, check, skip, info, shot, failShot, group, noErrors, openPage, browserVersion, close, finish };
}

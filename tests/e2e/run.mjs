#!/usr/bin/env node
// Browser end-to-end tests of the Salient page: playwright-core driving Debian's /usr/bin/chromium.
//
//   node tests/e2e/run.mjs URL [DIST_DIR]
//
// URL serves the built page (dist/); DIST_DIR (default: <repo>/dist) is the directory behind it:
// the tests write broken model files there (test-*.gguf) and remove them at the end.
// Prints `ok  name` / `FAIL name details` per check and a last line `N passed, M failed`;
// exits 1 on any failure. Artifacts go to $TEST_OUT (default <repo>/test-out): page.png (after the
// first successful run), error.png (corrupt model), worker-stopped.png (pool threads that trap), fail-*.png, e2e-console.log (page + worker).
import { ROOT, URL_, DIST, OUT, S, createSuite, mark, states, settle, snapshot, pageNow, textsSince, runProgressSince, MODEL_FILE, MODEL_BYTES } from './lib.mjs';
import { mkdirSync, writeFileSync, readFileSync, existsSync, rmSync, openSync, readSync, closeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { readGgufTokens, tokenId } from './gguf-vocab.mjs';

const LOAD_AND_RUN_MS = 150 * S;   // model load (up to ~60 s) + first run (up to ~60 s) + margin
const RUN_MS = 90 * S;

const EXAMPLE = 'The Eiffel Tower is located in the city of';
const EXAMPLE_IDS = [504, 414, 46682, 18669, 314, 3807, 281, 260, 2240, 282];
const PARIS = 7042;

mkdirSync(OUT, { recursive: true });
const LOG = join(OUT, 'e2e-console.log');
const { note, check, info, shot, failShot, group, noErrors, openPage: open, browserVersion, close, finish } =
  createSuite({ url: URL_, out: OUT, log: LOG, name: 'e2e', watchdogS: 1500 });
const openPage = (scope, query = '', options = {}) => open(scope, query, { timeout: 30 * S, ...options });
const J = (v) => JSON.stringify(v);

// Oracle for token ids, independent of the engine: the GGUF's own vocabulary.
let vocab = null;
for (const p of [join(DIST, 'models', MODEL_FILE), join(ROOT, 'models', MODEL_FILE)]) {
  if (existsSync(p)) { try { vocab = readGgufTokens(p); break; } catch (e) { note('setup', `vocab ${p}: ${e.message}`); } }
}
const LONDON = vocab ? tokenId(vocab, ' London') : null;

// ---------------------------------------------------------------------------------------------
// Reading snapshots

const num = (v) => (v === null || v === undefined || v === '' ? NaN : Number(v));
const ids = (snap) => snap.tokens.map((t) => Number(t.id));
const scores = (snap) => snap.tokens.map((t) => num(t.score));
const brief = (snap) => `state=${snap.state} message=${J(snap.message)}`;

// ---------------------------------------------------------------------------------------------
// Tests on the default model

async function defaultModelTests() {
  const h = await openPage('default');
  const { page } = h;
  let snap = await settle(page, 0, LOAD_AND_RUN_MS);
  const loaded = check('default model loads and the first run is done', snap.state === 'done',
    `${brief(snap)} transitions=${J((await states(page)).map((s) => s.state))}`);
  if (!loaded) { await failShot(page); noErrors(h); await h.context.close(); return; }
  await shot(page, 'page.png');
  const seq = (await states(page)).map((s) => s.state);
  info(`state transitions: ${seq.join(' -> ')}`);
  check('status went through loading before done', seq.includes('loading'), J(seq));

  check('progress bar reports bytes while loading (data-total == model size, 0 < data-loaded <= total)',
    snap.progress.seen && snap.progress.total === MODEL_BYTES && snap.progress.maxLoaded > 0 && snap.progress.maxLoaded <= MODEL_BYTES,
    J(snap.progress));

  await group('default text: tokens', h, async () => {
    const t = snap.tokens;
    check('default text has 10 tokens with the expected ids in order',
      J(ids(snap)) === J(EXAMPLE_IDS) && t.every((x, i) => Number(x.index) === i), J(t.map((x) => [x.index, x.id])));
    check('token scores finite and >= 0, norms in [0,1]',
      t.length > 0 && t.every((x) => Number.isFinite(num(x.score)) && num(x.score) >= 0 && num(x.norm) >= 0 && num(x.norm) <= 1),
      J(t.map((x) => [x.score, x.norm])));
    check('some token has data-norm == 1', t.some((x) => Math.abs(num(x.norm) - 1) < 1e-6), J(t.map((x) => x.norm)));
    info(`tokens: ${t.map((x) => `${J(x.text)}:${num(x.norm).toFixed(2)}`).join(' ')}`);
  });

  await group('default text: predictions', h, async () => {
    const p = snap.preds, probs = p.map((x) => num(x.prob));
    const sum = probs.reduce((a, b) => a + b, 0);
    check('top-k has 5 predictions, probs in (0,1], sum <= 1',
      p.length === 5 && probs.every((x) => x > 0 && x <= 1) && sum <= 1 + 1e-4, `${J(p)} sum=${sum}`);
    check('top-1 prediction is " Paris" (7042)', p.length > 0 && Number(p[0].id) === PARIS, J(p[0]));
    check('predictions sorted by probability', probs.every((x, i) => i === 0 || x <= probs[i - 1] + 1e-7), J(probs));
    check('target is 7042', snap.target && Number(snap.target.id) === PARIS, J(snap.target));
    info(`top-5: ${p.map((x) => `${x.text} ${num(x.prob).toFixed(3)}`).join(' | ')}`);
  });

  await group('timings', h, async () => {
    const tm = snap.timings || {};
    const ms = ['load', 'forward', 'attribute', 'total'].map((k) => num(tm[k]));
    check('timings: load/forward/attribute/total ms finite >= 0, wasm memory > 0',
      ms.every((x) => Number.isFinite(x) && x >= 0) && num(tm.memory) > 0 && num(tm.total) + 1e-6 >= num(tm.forward), J(tm));
    info(`timings: ${J(tm)}`);
  });

  await group('threads', h, async () => {
    // scripts/serve.py sends COOP/COEP, so the worker runs the multi-threaded build on every core.
    const { isolated, cores } = await page.evaluate(() => ({ isolated: self.crossOriginIsolated, cores: navigator.hardwareConcurrency }));
    check(`cross-origin isolated page: the engine computes on all ${cores} cores`,
      isolated && cores > 1 && num(snap.timings?.threads) === cores, J({ isolated, cores, threads: snap.timings?.threads }));
    // worker.js picks threads-relaxed/ where its probe module validates (Chromium has relaxed SIMD).
    const probe = /RELAXED_SIMD_PROBE = '([^']+)'/.exec(readFileSync(join(DIST, 'worker.js'), 'utf8'))?.[1];
    const relaxed = await page.evaluate((b64) => WebAssembly.validate(Uint8Array.from(atob(b64), (c) => c.charCodeAt(0))), probe || '');
    check(`this browser ${relaxed ? 'has' : 'lacks'} relaxed SIMD, and the worker runs the build ${relaxed ? 'with' : 'without'} it`,
      probe !== undefined && snap.timings?.relaxedSimd === String(relaxed), J({ relaxed, timings: snap.timings }));
    isolatedRun = snap;
  });

  await group('native parity', h, async () => {
    // scripts/test.sh runs the native CLI on the same text (NATIVE_REFERENCE): the page's wasm
    // (simd128 kernels, its threads) must compute the engine's numbers.
    const path = process.env.NATIVE_REFERENCE;
    const native = path && existsSync(path) ? JSON.parse(readFileSync(path, 'utf8')) : null;
    if (!check('the native reference run exists (NATIVE_REFERENCE)', native !== null, `NATIVE_REFERENCE=${path}`)) return;
    const a = scores(snap), b = native.scores;
    const largest = Math.max(...b.map(Math.abs)), diff = Math.max(...a.map((x, i) => Math.abs(x - b[i])));
    const prob = num(snap.preds.find((p) => num(p.id) === native.target.id)?.prob);
    check('the page computes the native engine\'s map: same tokens and target, scores within 1e-4 of the largest, p(target) within 1e-5',
      J(ids(snap)) === J(native.tokens.map((t) => t.id)) && num(snap.target?.id) === native.target.id && a.length === b.length
        && diff <= 1e-4 * largest && Math.abs(prob - native.target.prob) <= 1e-5,
      `largest score difference ${diff} of ${largest}; p(target) page ${prob} native ${native.target.prob}`);
  });

  await group('method select', h, async () => {
    const opts = await page.$$eval('[data-testid=method] option', (os) => os.map((o) => o.value));
    const value = await page.$eval('[data-testid=method]', (s) => s.value);
    check('method select offers saliency (selected)', opts.includes('saliency') && value === 'saliency', `${J(opts)} value=${value}`);
  });

  await group('edit text', h, async () => {
    const before = snap;
    const m = await mark(page);
    await page.fill('[data-testid=editor]', 'The capital of Germany is');
    snap = await settle(page, m, RUN_MS);
    check('editing the text reruns (status done)', snap.state === 'done', brief(snap));
    check('tokens follow the edited text', snap.tokens.length > 0 && J(ids(snap)) !== J(ids(before)), J(ids(snap)));
    check('top-1 prediction changes', snap.preds.length > 0 && Number(snap.preds[0].id) !== PARIS, J(snap.preds[0]));
    info(`"The capital of Germany is" -> top-1 ${J(snap.preds[0]?.text)} (${snap.preds[0]?.id}${vocab && Number(snap.preds[0]?.id) === tokenId(vocab, ' Berlin') ? ', " Berlin"' : ''})`);
  });

  await group('click 2nd prediction', h, async () => {
    const before = snap;
    const second = before.preds[1];
    if (!second) throw new Error('no 2nd prediction');
    const m = await mark(page);
    await page.locator('[data-testid=topk] [data-testid=prediction]').nth(1).click({ timeout: 10 * S });
    snap = await settle(page, m, RUN_MS);
    check('clicking the 2nd prediction makes it the target', snap.state === 'done' && snap.target && snap.target.id === second.id,
      `${brief(snap)} target=${J(snap.target)} expected=${second.id}`);
    check('scores change with the target', J(scores(snap)) !== J(scores(before)), J(scores(snap)));
  });

  await group('target input', h, async () => {
    const before = snap;
    const m = await mark(page);
    const input = page.locator('[data-testid=target-input]');
    await input.fill(' London');
    await input.press('Enter');
    snap = await settle(page, m, RUN_MS);
    const ok = LONDON !== null ? Number(snap.target?.id) === LONDON : /London/.test(snap.target?.text || '');
    check('target input " London" + Enter sets the target', snap.state === 'done' && ok,
      `${brief(snap)} target=${J(snap.target)} expected id=${LONDON}`);
    check('scores change with the typed target', J(scores(snap)) !== J(scores(before)), J(scores(snap)));
  });

  await group('empty text', h, async () => {
    const m = await mark(page);
    const errorsBefore = h.errors.length;
    await page.fill('[data-testid=editor]', '');
    await page.locator('[data-testid=run]').click({ timeout: 2 * S }).catch(() => {});  // in case empty text does not auto-run
    snap = await settle(page, m, RUN_MS);
    check('empty text shows an error state mentioning empty text', snap.state === 'error' && /empty/i.test(snap.message || ''), brief(snap));
    check('empty text: no page errors', h.errors.length === errorsBefore, h.errors.slice(errorsBefore).join(' | '));
    const m2 = await mark(page);
    await page.fill('[data-testid=editor]', EXAMPLE);
    snap = await settle(page, m2, RUN_MS);
    check('recovers from the error when text is entered', snap.state === 'done' && J(ids(snap)) === J(EXAMPLE_IDS), `${brief(snap)} ids=${J(ids(snap))}`);
  });

  await group('cancel', h, async () => {
    const workersBefore = h.workers;
    let cancelled = null, long = '';
    for (const repeats of [20, 60]) {
      long = Array(repeats).fill(EXAMPLE).join(' ');
      const m = await mark(page);
      await page.fill('[data-testid=editor]', long);   // auto-runs after the debounce
      try {
        await page.waitForFunction(() => document.querySelector('[data-testid=status]')?.getAttribute('data-state') === 'running',
          null, { timeout: 10 * S, polling: 20 });
      } catch { info(`cancel: never saw running (${repeats}x text)`); continue; }
      const t0 = Date.now(), tp = await pageNow(page);
      await page.locator('[data-testid=cancel]').click({ timeout: 5 * S });
      try {
        await page.waitForFunction(() => document.querySelector('[data-testid=status]')?.getAttribute('data-state') !== 'running',
          null, { timeout: 10 * S, polling: 50 });
      } catch { /* reported below */ }
      const after = await snapshot(page), seq = (await states(page, m)).map((s) => s.state);
      const ranThrough = seq.includes('done');
      if (ranThrough && repeats === 20) { info(`cancel: the ${repeats}x run finished before cancel (${J(seq)}), retrying longer`); continue; }
      const ms = Date.now() - t0;
      // the page may restart the worker (state loading) before it settles in ready
      try {
        await page.waitForFunction(() => ['ready', 'done', 'error'].includes(
          document.querySelector('[data-testid=status]')?.getAttribute('data-state')), null, { timeout: LOAD_AND_RUN_MS, polling: 100 });
      } catch { /* reported below */ }
      cancelled = { after, ms, settled: await snapshot(page), seq: (await states(page, m)).map((s) => s.state), texts: await textsSince(page, tp) };
      break;
    }
    if (!cancelled) throw new Error('could not catch a run in the running state');
    const { after, settled, seq, ms, texts } = cancelled;
    const shown = texts.map((x) => `${x.state}: ${x.text}`);
    const shownBrief = J(shown.length > 4 ? [...shown.slice(0, 3), '…', shown[shown.length - 1]] : shown);
    info(`cancel: ${ms} ms to leave running; transitions ${seq.join(' -> ')}; messages ${shownBrief}`);
    check('cancel leaves running within 10 s', after.state !== 'running', brief(after));
    check('cancel: status ready with a message saying it was cancelled',
      texts.some((x) => x.state === 'ready' && /cancel/i.test(x.text)) && settled.state === 'ready',
      `transitions ${seq.join(' -> ')}; messages ${shownBrief}`);
    check('cancel keeps the text', settled.editor === long, `editor has ${settled.editor?.length} chars, expected ${long.length}`);
    // A new run after the cancel (the worker was restarted and reloads the model).
    const m = await mark(page);
    await page.fill('[data-testid=editor]', EXAMPLE);
    snap = await settle(page, m, LOAD_AND_RUN_MS);
    if (snap.state !== 'done') {
      info(`after cancel: editing gave ${brief(snap)}; clicking run`);
      const m2 = await mark(page);
      await page.locator('[data-testid=run]').click({ timeout: 60 * S });
      snap = await settle(page, m2, LOAD_AND_RUN_MS);
    }
    check('a new run after cancel reaches done with the right tokens', snap.state === 'done' && J(ids(snap)) === J(EXAMPLE_IDS),
      `${brief(snap)} ids=${J(ids(snap))}`);
    // The multi-threaded worker stops through its stop flag and keeps its model; the
    // single-threaded one is terminated and replaced.
    const threaded = Number(snap.timings?.threads) > 1;
    check(threaded ? 'cancel stopped the run in the same worker, without reloading the model' : 'cancel restarted the worker',
      threaded ? h.workers === workersBefore && !seq.includes('loading') : h.workers > workersBefore,
      `workers created: ${workersBefore} -> ${h.workers}; transitions ${seq.join(' -> ')}`);
  });

  await group('run progress', h, () => runProgressTest(page, 'threads', 6));

  noErrors(h);
  await h.context.close();
}

// A run of occlusion on the example said `repeats` times (several seconds) shows its progress: the
// bar's count only grows, towards a fixed expected work, the status line says the percentage and,
// once there is a pace, the time left; the bar goes when the map arrives. Leaves the page on
// saliency and the example.
async function runProgressTest(page, label, repeats) {
  await page.selectOption('[data-testid=method]', 'occlusion');
  let snap = await settle(page, await mark(page), RUN_MS);
  const m = await mark(page), t = await pageNow(page);
  await page.fill('[data-testid=editor]', Array(repeats).fill(EXAMPLE).join(' '));
  snap = await settle(page, m, RUN_MS);
  const readings = await runProgressSince(page, t), said = (await textsSince(page, t)).map((x) => x.text);
  const inside = readings.filter((r) => r.done > 0 && r.done < r.expected);
  info(`${label}: run progress ${readings.length} readings, e.g. ${J(readings.slice(0, 3))}…${J(readings.slice(-1))}; said ${J(said.slice(0, 4))}`);
  check(`${label}: occlusion reaches done`, snap.state === 'done', brief(snap));
  check(`${label}: the progress bar counts the run's work, growing towards a fixed total`,
    inside.length >= 3 && readings.every((r, i) => i === 0 || (r.done >= readings[i - 1].done && r.expected === readings[i - 1].expected)),
    J(readings));
  check(`${label}: the status says the percentage done and the time left`,
    said.some((x) => /^Computing Occlusion.*… \d+ %/.test(x)) && said.some((x) => /\d+ %, about \d+ (s|min) left/.test(x)), J(said));
  check(`${label}: the bar is gone once the map is shown`, await page.evaluate(() => !document.querySelector('[data-testid=progress]')), '');
  // Saliency is one forward and one backward pass: its count moves block by block, not per pass.
  const single = await mark(page), ts = await pageNow(page);
  await page.selectOption('[data-testid=method]', 'saliency');
  const saliency = await settle(page, single, RUN_MS);
  const steps = (await runProgressSince(page, ts)).filter((r) => r.done > 0 && r.done < r.expected);
  info(`${label}: saliency's progress ${steps.length} readings between start and end`);
  check(`${label}: saliency's passes are heard block by block`, saliency.state === 'done' && steps.length >= 10, `${steps.length} ${brief(saliency)}`);
  const back = await mark(page);
  await page.fill('[data-testid=editor]', EXAMPLE);
  await settle(page, back, RUN_MS);
}

// ---------------------------------------------------------------------------------------------
// Broken models: the page must show an error state (not throw) and keep the editor.

function writeBrokenModels() {
  const files = {
    'test-corrupt.gguf': randomBytes(1 << 20),
    'test-corrupt-text.gguf': Buffer.from('This is a text file, not a model.\n'.repeat(100)),
  };
  // the first half of the real model: valid header and metadata, tensor data cut off
  const real = [join(DIST, 'models', MODEL_FILE), join(ROOT, 'models', MODEL_FILE)].find(existsSync);
  if (real) {
    const half = Buffer.alloc(MODEL_BYTES >> 1), fd = openSync(real, 'r');
    readSync(fd, half, 0, half.length, 0); closeSync(fd);
    files['test-truncated.gguf'] = half;
  }
  for (const [name, data] of Object.entries(files)) writeFileSync(join(DIST, name), data);
  return Object.keys(files);
}

async function brokenModelTest(scope, file, { mustSay = null, screenshot = null, allowConsole = [] } = {}) {
  const holder = {};
  let h;
  await group(`${scope} model`, holder, async () => {
    h = await openPage(scope, `?model=${encodeURIComponent(file)}`, { allowConsole });
    holder.page = h.page;
    const snap = await settle(h.page, 0, LOAD_AND_RUN_MS);
    check(`${scope} model -> error state${mustSay ? ` mentioning ${mustSay}` : ''}`,
      snap.state === 'error' && (!mustSay || (snap.message || '').includes(mustSay)), brief(snap));
    check(`${scope} model: editor still there with the example text`, snap.editor === EXAMPLE, J(snap.editor));
    if (screenshot) await shot(h.page, screenshot);
    noErrors(h);
  });
  if (h) await h.context.close();
}

// ---------------------------------------------------------------------------------------------
// The same page from a host that does not send COOP/COEP (a plain static host): no
// SharedArrayBuffer, so one thread; the map must match the multi-threaded one.

let isolatedRun = null;

function serveNotIsolated() {
  const server = spawn('python3', [join(ROOT, 'scripts/serve.py'), '--dir', DIST, '--not-isolated', '0'], { stdio: ['ignore', 'pipe', 'ignore'] });
  const url = new Promise((resolve, reject) => {
    server.stdout.on('data', (d) => { const m = /^serving (\S+)/m.exec(String(d)); if (m) resolve(m[1]); });
    server.on('exit', (code) => reject(new Error(`serve.py exited with ${code}`)));
  });
  return { server, url };
}

async function singleThreadTest() {
  const { server, url } = serveNotIsolated();
  let h = null;
  try {
    h = await openPage('not isolated', await url);
    const snap = await settle(h.page, 0, LOAD_AND_RUN_MS);
    const isolated = await h.page.evaluate(() => self.crossOriginIsolated);
    check('host without COOP/COEP: the page works, on one thread', snap.state === 'done' && !isolated && num(snap.timings?.threads) === 1,
      `${brief(snap)} isolated=${isolated} timings=${J(snap.timings)}`);
    sameMapAsIsolated(snap, 'one thread');
    await runProgressTest(h.page, 'one thread', 3);
    noErrors(h);
  } finally {
    if (h) await h.context.close();
    server.kill();
  }
}

// Browsers without relaxed SIMD run threads/: served here in place of threads-relaxed/, it must
// compute the same map on every core.
async function plainThreadsTest() {
  let h = null;
  try {
    const swap = (context) => context.route('**/threads-relaxed/*', (route) =>
      route.fulfill({ path: join(DIST, 'threads', new URL(route.request().url()).pathname.split('/').pop()) }));
    h = await openPage('threads without relaxed SIMD', '', { setup: swap });
    const snap = await settle(h.page, 0, LOAD_AND_RUN_MS);
    check('the multi-threaded build without relaxed SIMD (threads/) computes on every core',
      snap.state === 'done' && num(snap.timings?.threads) > 1 && snap.timings?.relaxedSimd === 'false', `${brief(snap)} timings=${J(snap.timings)}`);
    sameMapAsIsolated(snap, 'threads/ build');
    noErrors(h);
  } finally {
    if (h) await h.context.close();
  }
}

// A worker that dies must not leave the page loading or computing forever: the page says that the
// worker stopped, and why, and keeps the text. `serve(route)` answers the request for worker.js;
// `allowConsole` adds console errors the failure itself causes.
async function deadWorkerTest(scope, serve, why, { screenshot = null, allowConsole = [] } = {}) {
  let h = null, served = 0;
  try {
    const setup = (context) => context.route(/\/worker\.js(\?|$)/, (route) => { served++; return serve(route); });
    h = await openPage(scope, '', { setup, allowConsole: [why, ...allowConsole] });
    const snap = await settle(h.page, 0, LOAD_AND_RUN_MS);
    check(`${scope}: the page says the worker stopped, and why`,
      served > 0 && snap.state === 'error' && /worker stopped/i.test(snap.message || '') && why.test(snap.message || ''),
      `worker.js served ${served}x; ${brief(snap)}`);
    check(`${scope}: editor still there with the example text`, snap.editor === EXAMPLE, J(snap.editor));
    if (screenshot) await shot(h.page, screenshot);
    // The failure's own reports are expected; anything else is not.
    const others = h.errors.filter((e) => !why.test(e) && !/^pageerror: (null|undefined)?$/.test(e));
    check(`no page/console errors besides the failure's (${scope})`, others.length === 0, others.slice(0, 5).join(' | '));
  } finally {
    if (h) await h.context.close();
  }
}

// Every pool thread traps as it starts: the engine worker's script is served with a prelude that
// hands each pool thread an address beyond the memory in place of its start data.
const DEAD_POOL_PRELUDE = `{
  const Real = self.Worker;
  self.Worker = class extends Real {
    postMessage(data, ...rest) {
      if (data?.type === 'wasm_bindgen_worker_init') data = { ...data, receiver: 0xfffffff0 };
      return super.postMessage(data, ...rest);
    }
  };
}
`;

async function deadWorkerTests() {
  await deadWorkerTest('pool threads that trap', async (route) => {
    const response = await route.fetch();
    await route.fulfill({ response, body: DEAD_POOL_PRELUDE + await response.text() });
  }, /memory access out of bounds/, { screenshot: 'worker-stopped.png' });
  await deadWorkerTest('worker script missing', (route) => route.fulfill({ status: 404, body: 'not here' }),
    /could not be loaded/, { allowConsole: [/status of 404/] });
}

// The map of `snap` equals the isolated page's (relaxed SIMD, all threads) within 1e-5 of the
// largest score: threads split each weight into other blocks and fused multiply-adds round once,
// so f32 sums may round differently.
function sameMapAsIsolated(snap, label) {
  if (!isolatedRun) return;
  const a = scores(snap), b = scores(isolatedRun);
  const largest = Math.max(...b.map(Math.abs)), diff = Math.max(...a.map((x, i) => Math.abs(x - b[i])));
  check(`${label} and the isolated page give the same map (within 1e-5 of the largest score)`,
    J(ids(snap)) === J(ids(isolatedRun)) && a.length === b.length && diff <= 1e-5 * largest,
    `largest difference ${diff} of ${largest}`);
  info(`${label}: forward ${snap.timings?.forward} ms, attribution ${snap.timings?.attribute} ms; `
    + `isolated (${isolatedRun.timings?.threads} threads, relaxed SIMD ${isolatedRun.timings?.relaxedSimd}): `
    + `forward ${isolatedRun.timings?.forward} ms, attribution ${isolatedRun.timings?.attribute} ms`);
}

// ---------------------------------------------------------------------------------------------

let written = [];
try {
  info(`${await browserVersion()} -> ${URL_}${LONDON === null ? ' (no GGUF vocabulary found: target-input check by text)' : ''}`);

  await group('default model', null, defaultModelTests);
  await group('one thread', null, singleThreadTest);
  await group('threads without relaxed SIMD', null, plainThreadsTest);
  await group('dead worker', null, deadWorkerTests);

  try { written = writeBrokenModels(); } catch (e) { check('write broken model files into dist', false, `${DIST}: ${e.message}`); }
  if (written.includes('test-corrupt.gguf'))
    await brokenModelTest('corrupt (random bytes)', 'test-corrupt.gguf', { mustSay: 'GGUF', screenshot: 'error.png' });
  if (written.includes('test-corrupt-text.gguf'))
    await brokenModelTest('corrupt (text file)', 'test-corrupt-text.gguf', { mustSay: 'GGUF' });
  if (written.includes('test-truncated.gguf'))
    await brokenModelTest('truncated', 'test-truncated.gguf');
  await brokenModelTest('missing (404)', 'test-does-not-exist.gguf',
    { allowConsole: [/status of 404/, /test-does-not-exist\.gguf/] });
} catch (e) {
  check('e2e harness', false, e.stack || e.message);
} finally {
  for (const f of written) rmSync(join(DIST, f), { force: true });
  await close();
}
finish(`; console log: ${LOG}`);

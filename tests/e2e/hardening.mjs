#!/usr/bin/env node
// Browser end-to-end tests of the page's hardening (issue 5), in headless Chromium on the default
// model: cancelling a slow run and starting another at once, quick method switches never showing a
// map for the wrong text or method, 50 edits without unbounded memory growth, no request to another
// origin unless the user loads a model from there, and the Content-Security-Policy.
//
//   node tests/e2e/hardening.mjs URL [DIST_DIR]
//
// URL serves the built page (scripts/serve.py, which sends index.html's policy as a header too).
// The test starts a second scripts/serve.py --cors on another port for models/. Prints `ok  name` /
// `FAIL name details` per check and a last line `N passed, M failed`; exits 1 on any failure.
// Artifacts go to $TEST_OUT (default <repo>/test-out): hardening-*.png, fail-*.png,
// e2e-hardening-console.log.
import { ROOT, URL_, DIST, OUT, S, browserCpuSeconds, createSuite, mark, settle, showModelPanel, states, textsSince, MODEL_FILE } from './lib.mjs';
import { readGgufTokens } from './gguf-vocab.mjs';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { join, resolve } from 'node:path';

const LOAD_AND_RUN_MS = 180 * S;
const RUN_MS = 150 * S;
const ORIGIN = new URL(URL_).origin;

const EXAMPLE = 'The Eiffel Tower is located in the city of';
// Long enough that integrated gradients (32 steps) takes well over a minute in the page.
const SLOW = 'The history of the city begins long before the first bridge was built across the river. '
  + 'Farmers and fishermen lived along its banks for centuries, trading grain, salt and wool with '
  + 'travellers who came down from the mountains every spring, and the town that grew there was called';

mkdirSync(OUT, { recursive: true });
const { note, check, skip, info, shot, group, noErrors, openPage, browserVersion, close, finish } =
  createSuite({ url: URL_, out: OUT, log: join(OUT, 'e2e-hardening-console.log'), name: 'hardening e2e', watchdogS: 2400 });
const J = (v) => JSON.stringify(v);
const MB = (bytes) => `${(bytes / 1e6).toFixed(1)} MB`;

// ---------------------------------------------------------------------------------------------
// The oracle for "which text do these tokens spell": the GGUF's own token strings, decoded with
// GPT-2's byte-level alphabet (written here from its definition), independent of the engine.

let vocab = null;
for (const p of [join(DIST, 'models', MODEL_FILE), join(ROOT, 'models', MODEL_FILE)]) {
  if (existsSync(p)) { try { vocab = readGgufTokens(p); break; } catch (e) { note('setup', `vocab ${p}: ${e.message}`); } }
}
// Printable bytes stand for themselves; the other 68 bytes are spelled U+0100, U+0101, … in order.
const BYTE_OF = (() => {
  const printable = [];
  for (const [a, b] of [[33, 126], [161, 172], [174, 255]]) for (let x = a; x <= b; x++) printable.push(x);
  const map = new Map(printable.map((x) => [String.fromCodePoint(x), x]));
  let n = 0;
  for (let x = 0; x < 256; x++) if (!printable.includes(x)) map.set(String.fromCodePoint(256 + n++), x);
  return map;
})();
const tokenBytes = (id) => [...vocab[id]].flatMap((c) => (BYTE_OF.has(c) ? [BYTE_OF.get(c)] : [...Buffer.from(c, 'utf8')]));
const spell = (ids) => Buffer.from(ids.flatMap(tokenBytes)).toString('utf8');

// ---------------------------------------------------------------------------------------------
// Reading the page

// The shown map and what the page says about it: the heatmap's data-text/-method/-current, its
// token ids, the legend's title, and the controls it should agree with.
const mapView = (page) => page.evaluate(() => {
  const q = (s) => document.querySelector(`[data-testid=${s}]`);
  const h = q('heatmap'), target = q('target');
  return {
    state: q('status')?.getAttribute('data-state'), message: q('status')?.textContent.trim(),
    editor: q('editor')?.value, method: q('method')?.value,
    text: h?.getAttribute('data-text') ?? null, mapMethod: h?.getAttribute('data-method') ?? null,
    current: h?.getAttribute('data-current') ?? null,
    ids: h ? [...h.querySelectorAll('[data-testid=token]')].map((e) => Number(e.getAttribute('data-token-id'))) : [],
    legend: q('legend')?.querySelector('.what strong')?.textContent ?? null,
    preds: [...document.querySelectorAll('[data-testid=prediction]')].map((e) => ({ id: Number(e.getAttribute('data-token-id')), prob: Number(e.getAttribute('data-prob')) })),
    target: target ? Number(target.getAttribute('data-token-id')) : null,
    wasm: Number(q('timings')?.getAttribute('data-wasm-memory') || NaN),
    faithfulness: q('faithfulness')?.getAttribute('data-state') ?? null,
  };
});
const brief = (v) => `state=${v.state} message=${J(v.message)} text=${J(v.text?.slice(0, 60))} method=${v.mapMethod} current=${v.current}`;

// In the page: every state of the map at a task boundary (where microtasks, and so the page's
// reactive updates, have run: what a frame can show), sampled on every animation frame, every
// 10 ms and in the task after any DOM change; consecutive duplicates are dropped. And every paint:
// each time the map's text or method changes, read in the mutation's own task (no user input can
// come between), with the editor's text and the selected method at that moment.
function mapSampler() {
  const rec = (window.__maps = { samples: [], paints: [] });
  let painted = null;
  const paint = () => {
    const h = document.querySelector('[data-testid=heatmap]');
    const text = h?.getAttribute('data-text') ?? null, mapMethod = h?.getAttribute('data-method') ?? null;
    if (text === null || JSON.stringify([text, mapMethod]) === painted) return;
    painted = JSON.stringify([text, mapMethod]);
    rec.paints.push({ t: performance.now(), text, mapMethod, editor: document.querySelector('[data-testid=editor]')?.value ?? null,
                      method: document.querySelector('[data-testid=method]')?.value ?? null });
  };
  const take = () => {
    const q = (s) => document.querySelector(`[data-testid=${s}]`);
    const h = q('heatmap');
    if (!h) return;
    const s = {
      editor: q('editor')?.value ?? null, method: q('method')?.value ?? null,
      text: h.getAttribute('data-text'), mapMethod: h.getAttribute('data-method'), current: h.getAttribute('data-current'),
      ids: [...h.querySelectorAll('[data-testid=token]')].map((e) => Number(e.getAttribute('data-token-id'))),
      legend: q('legend')?.querySelector('.what strong')?.textContent ?? null,
      state: q('status')?.getAttribute('data-state') ?? null,
    };
    const key = JSON.stringify(s), last = rec.samples[rec.samples.length - 1];
    if (!last || last.key !== key) rec.samples.push({ ...s, key, t: performance.now() });
  };
  let queued = false;
  new MutationObserver(() => {
    paint();
    if (queued) return;
    queued = true;
    setTimeout(() => { queued = false; take(); }, 0);
  }).observe(document, { subtree: true, childList: true, characterData: true, attributes: true });
  setInterval(take, 10);
  const frame = () => { take(); requestAnimationFrame(frame); };
  requestAnimationFrame(frame);
}
const samplesSince = (page, t) => page.evaluate((t0) => window.__maps.samples.filter((s) => s.t >= t0).map(({ key, ...s }) => s), t);
const paintsSince = (page, t) => page.evaluate((t0) => window.__maps.paints.filter((s) => s.t >= t0), t);
const pageNow = (page) => page.evaluate(() => performance.now());

// Waits for the run started after `since`, then for its faithfulness check, if any.
async function settled(page, since, timeout = RUN_MS) {
  await settle(page, since, timeout);
  await page.waitForFunction(() => !document.querySelector('[data-testid=faithfulness][data-state=measuring]'), null,
    { timeout, polling: 200 }).catch((e) => { if (!/Timeout/i.test(e.message)) throw e; });
  return mapView(page);
}
// Does `act` and waits for the run it causes.
async function after(page, act, timeout = RUN_MS) {
  const since = await mark(page);
  await act();
  return settled(page, since, timeout);
}
const waitState = (page, state, timeout) => page.waitForFunction((s) => document.querySelector('[data-testid=status]')?.getAttribute('data-state') === s,
  state, { timeout, polling: 10 });

// The map the page settled on is the one for the editor's text and the selected method.
function checkSettledMap(name, v, text, method, labels) {
  check(`${name}: done, the map is marked current`, v.state === 'done' && v.current === 'true', brief(v));
  check(`${name}: the map is for the editor's text (data-text, and the token ids spell it)`,
    v.editor === text && v.text === text && v.ids.length > 0 && spell(v.ids) === text, `editor=${J(v.editor)} data-text=${J(v.text)} tokens spell ${J(vocab && spell(v.ids))}`);
  check(`${name}: the map and the legend are for the selected method (${method})`,
    v.method === method && v.mapMethod === method && (v.legend || '').startsWith(`${labels[method]} of `), `select=${v.method} map=${v.mapMethod} legend=${J(v.legend)}`);
  check(`${name}: the target is the top prediction, with a probability in (0, 1]`,
    v.preds.length === 5 && v.target === v.preds[0].id && v.preds[0].prob > 0 && v.preds[0].prob <= 1
      && v.preds.every((p, i) => i === 0 || p.prob <= v.preds[i - 1].prob), `target=${v.target} preds=${J(v.preds)}`);
}

// Each rendered state of the map is consistent: the tokens spell the text the map says it is
// for (a map kept from before, marked as not current, is drawn on the edited text only where its
// tokens' characters are unchanged: those tokens, in order, are in both texts), the legend names
// the map's method, and a map marked current is for the editor's text and the selected method.
const inOrder = (parts, text) => {
  let at = 0;
  for (const part of parts) { const i = text.indexOf(part, at); if (i < 0) return false; at = i + part.length; }
  return true;
};
const drawnWrong = (s) => {
  if (s.text === null || s.ids.length === 0) return false;
  if (s.current !== 'false') return spell(s.ids) !== s.text;
  const parts = s.ids.map((id) => spell([id]));
  return !inOrder(parts, s.text) || !inOrder(parts, s.editor ?? '');
};
function checkSamples(name, { samples, paints }, labels, combos) {
  const spelledWrong = samples.filter(drawnWrong);
  check(`${name}: every rendered map's tokens spell the text it is marked with, or (kept from before) lie on unchanged characters (${samples.length} states sampled)`,
    samples.length > 0 && spelledWrong.length === 0, J(spelledWrong.slice(0, 2)));
  const legendWrong = samples.filter((s) => s.mapMethod !== null && !(s.legend || '').startsWith(`${labels[s.mapMethod]} of `));
  check(`${name}: the legend always names the shown map's method`, legendWrong.length === 0, J(legendWrong.slice(0, 2)));
  const stale = samples.filter((s) => s.current === 'true' && (s.text !== s.editor || s.mapMethod !== s.method));
  check(`${name}: no map marked current ever pairs another text or method with the editor and select`, stale.length === 0,
    J(stale.slice(0, 2).map((s) => ({ editor: s.editor, method: s.method, text: s.text, mapMethod: s.mapMethod }))));
  const unmarked = samples.filter((s) => s.current === 'false' && s.text === s.editor && s.mapMethod === s.method);
  check(`${name}: a map is marked not current only when it is for another text or method`, unmarked.length === 0, J(unmarked.slice(0, 2)));
  const mixed = [...samples, ...paints].filter((s) => s.text !== null && !combos.some(([t, m]) => t === s.text && m === s.mapMethod));
  check(`${name}: every shown map is for a (text, method) the user had chosen, never a mix`, mixed.length === 0,
    J(mixed.slice(0, 2).map((s) => [s.text, s.mapMethod])));
  // A method switch reruns at once, so the result of a run for the method switched away from
  // must be dropped, never painted (an edit's text waits for the pause, so it may trail).
  const superseded = paints.filter((p) => p.mapMethod !== p.method);
  check(`${name}: no map is painted for a method other than the one selected (${paints.length} paints)`, superseded.length === 0,
    J(superseded.slice(0, 2).map((p) => ({ painted: p.mapMethod, selected: p.method, text: p.text }))));
}
const recorded = async (page, t) => ({ samples: await samplesSince(page, t), paints: await paintsSince(page, t) });

// A fresh context with its page at about:blank: init scripts and listeners go in before the page
// loads, then `go` opens the page.
async function fresh(scope, query = '', allowConsole = []) {
  const h = await openPage(scope, 'about:blank', { allowConsole, timeout: 30 * S });
  h.go = async (q = query) => { note(scope, `goto ${new URL(q, URL_).href.slice(0, 160)}`); await h.page.goto(new URL(q, URL_).href, { timeout: 30 * S }); };
  return h;
}

// ---------------------------------------------------------------------------------------------
// 1. Cancel a slow run and start another at once.

async function cancelTests(labels) {
  const h = await fresh('hardening-cancel');
  const { page } = h;
  await page.addInitScript(mapSampler);
  await h.go();
  let v = await settled(page, 0, LOAD_AND_RUN_MS);
  if (!check('cancel: the page loads and explains the example', v.state === 'done' && v.current === 'true', brief(v))) return h;
  const m0 = await mark(page);
  await page.selectOption('[data-testid=method]', 'integrated_gradients');
  v = await settled(page, m0, RUN_MS);
  check('cancel: integrated gradients on the example is done first', v.state === 'done' && v.mapMethod === 'integrated_gradients', brief(v));

  // Starts the slow run (it replaces the shown map only if it ever finishes) and waits until the
  // worker is inside it.
  const startSlow = async (text) => {
    await page.fill('[data-testid=editor]', text);
    await waitState(page, 'running', 30 * S);
    await sleep(1500);
    return mapView(page);
  };

  await group('cancel, then a new text and Run in the same task', h, async () => {
    const NEW = 'Paris is the capital of';
    const workers = h.workers;
    const before = await startSlow(SLOW);
    check('cancel: the slow run is running and the old map is marked not current', before.state === 'running' && before.current === 'false'
      && before.text === EXAMPLE, brief(before));
    const m = await mark(page), t = await pageNow(page);
    // Cancel, edit and Run in one task: the page must not mix the cancelled run into the new one.
    await page.evaluate((text) => {
      document.querySelector('[data-testid=cancel]').click();
      const editor = document.querySelector('[data-testid=editor]');
      editor.value = text;
      editor.dispatchEvent(new Event('input', { bubbles: true }));
      document.querySelector('[data-testid=run]').click();
    }, NEW);
    v = await settled(page, m, LOAD_AND_RUN_MS);
    await sleep(2000);   // anything the cancelled run could still paint would come now
    v = await mapView(page);
    checkSettledMap('cancel + Run at once', v, NEW, 'integrated_gradients', labels);
    const seq = (await states(page, m)).map((s) => s.state);
    check('cancel + Run at once: no error state on the way', !seq.includes('error'), seq.join(' -> '));
    info(`cancel + Run at once: workers ${workers} -> ${h.workers}; said ${J((await textsSince(page, t)).map((x) => x.text))}`);
    const rec = await recorded(page, t);
    check('cancel + Run at once: the cancelled run never painted its map (the new one did)',
      ![...rec.samples, ...rec.paints].some((s) => s.text === SLOW) && rec.paints.some((p) => p.text === NEW),
      J([...new Set(rec.paints.map((s) => s.text))]));
    checkSamples('cancel + Run at once', rec, labels, [[EXAMPLE, 'integrated_gradients'], [NEW, 'integrated_gradients']]);
    info(`cancel + Run at once: states ${seq.join(' -> ')}`);
  });

  await group('cancel, then an edit that reruns after the pause', h, async () => {
    const NEW = 'The largest planet in the solar system is';
    const SLOW2 = `${SLOW} the`;
    const old = (await mapView(page)).text;
    const before = await startSlow(SLOW2);
    check('cancel 2: the slow run is running', before.state === 'running', brief(before));
    const m = await mark(page), t = await pageNow(page);
    await page.click('[data-testid=cancel]', { timeout: 5 * S });
    await waitState(page, 'ready', LOAD_AND_RUN_MS);   // at once, or after the model's reload
    const said = (await textsSince(page, t)).map((x) => x.text);
    check('cancel 2: the page says the run was cancelled', said.some((x) => /cancel/i.test(x)), J(said));
    await page.fill('[data-testid=editor]', NEW);
    v = await settled(page, m, LOAD_AND_RUN_MS);
    await sleep(2000);
    v = await mapView(page);
    checkSettledMap('cancel + edit', v, NEW, 'integrated_gradients', labels);
    const seq = (await states(page, m)).map((s) => s.state);
    check('cancel + edit: no error state on the way', !seq.includes('error'), seq.join(' -> '));
    const rec = await recorded(page, t);
    check('cancel + edit: the cancelled run never painted its map (the new one did)',
      ![...rec.samples, ...rec.paints].some((s) => s.text === SLOW2 || s.text === SLOW) && rec.paints.some((p) => p.text === NEW),
      J([...new Set(rec.paints.map((s) => s.text))]));
    checkSamples('cancel + edit', rec, labels, [[old, 'integrated_gradients'], [NEW, 'integrated_gradients']]);
    info(`cancel + edit: states ${seq.join(' -> ')}`);
  });
  await group('cancel frees the cores', h, async () => {
    // A stopped computation must not go on in the background (in the multi-threaded build,
    // terminating the worker alone leaves its pool's threads computing to the end), or the next
    // run gets a share of the cores. Idle here is about 0.15 cores (this test's own samplers);
    // without the stop, 0.8 after the cancel.
    const rate = async (seconds) => {
      const c0 = browserCpuSeconds(), t0 = Date.now();
      await sleep(seconds * 1000);
      return (browserCpuSeconds() - c0) / ((Date.now() - t0) / 1000);
    };
    await startSlow(`${SLOW} a`);
    const busy = await rate(3);
    await page.click('[data-testid=cancel]', { timeout: 5 * S });
    await waitState(page, 'ready', LOAD_AND_RUN_MS);   // at once, or after the model's reload
    await sleep(1000);
    const after = await rate(3);
    const threads = (await page.getAttribute('[data-testid=timings]', 'data-threads').catch(() => null)) || '?';
    const measured = `cores busy while running ${busy.toFixed(2)}, after the cancel ${after.toFixed(2)} (threads ${threads})`;
    // A guard against a runaway computation, not a speed check: the run must have been computing
    // (half a core at least) for the idle reading after it to mean anything.
    check('cancel frees the cores: the run used them, and after the cancel the browser is idle', busy > 0.5 && after < 0.4, measured);
    info(`cancel frees the cores: ${measured}`);
  });

  await group('an edit during a slow run stops it', h, async () => {
    // The multi-threaded worker stops the slow run through its stop flag, so the new text's map
    // comes in seconds; without a stop flag the edit waits for the slow run (well over a minute).
    const NEW = 'The capital of Italy is';
    await startSlow(`${SLOW} b`);
    const threads = Number(await page.getAttribute('[data-testid=timings]', 'data-threads').catch(() => null));
    if (threads <= 1) { skip('an edit during a slow run stops it', `${threads} thread here: the edit waits for the run`); return; }
    const m = await mark(page), t0 = Date.now();
    await page.fill('[data-testid=editor]', NEW);
    await settle(page, m, LOAD_AND_RUN_MS);
    const seconds = (Date.now() - t0) / 1000;
    v = await settled(page, m, LOAD_AND_RUN_MS);
    checkSettledMap('edit during a slow run', v, NEW, 'integrated_gradients', labels);
    check('edit during a slow run: the new map came without waiting for the slow run (under 40 s)', seconds < 40, `${seconds.toFixed(1)} s`);
    info(`edit during a slow run: the new map after ${seconds.toFixed(1)} s`);
  });
  await shot(page, 'hardening-cancel.png');
  noErrors(h);
  await h.context.close();
}

// ---------------------------------------------------------------------------------------------
// 2. Quick method switches (and edits among them) never show a stale map.

async function switchTests(labels) {
  const h = await fresh('hardening-switch');
  const { page } = h;
  await page.addInitScript(mapSampler);
  await h.go();
  let v = await settled(page, 0, LOAD_AND_RUN_MS);
  if (!check('switch: the page loads and explains the example', v.state === 'done', brief(v))) return h;

  // Plays `steps` ([text] or [null, method]) with `gap` ms between them, then waits for the page
  // to settle; checks every sampled state and the final map.
  const play = async (name, steps, gap) => {
    let text = (await mapView(page)).editor, method = (await mapView(page)).method;
    const combos = [[text, method]];
    const m = await mark(page), t = await pageNow(page);
    for (const [t2, m2] of steps) {
      if (t2 !== null) { await page.fill('[data-testid=editor]', t2); text = t2; }
      if (m2) { await page.selectOption('[data-testid=method]', m2); method = m2; }
      combos.push([text, method]);
      await sleep(gap);
    }
    const ms = Date.now();
    v = await settled(page, m, RUN_MS);
    await sleep(1000);
    v = await mapView(page);
    checkSettledMap(name, v, text, method, labels);
    const rec = await recorded(page, t);
    checkSamples(name, rec, labels, combos);
    const shown = [...new Set(rec.samples.filter((s) => s.text !== null).map((s) => `${s.mapMethod}:${s.current}:${J(s.text.slice(0, 24))}`))];
    info(`${name}: ${rec.samples.length} states; maps shown ${shown.join(' | ')}; settled ${((Date.now() - ms) / 1000).toFixed(1)} s after the last step`);
  };

  await group('edit, then switch methods within a few hundred ms', h, () => play('switch after edit', [
    ['The Great Wall of China is in'], [null, 'grad_x_input'], [null, 'attention'], [null, 'rollout'], [null, 'saliency'], [null, 'attention'],
  ], 60));
  // With the faithfulness check of the last map still running, so a switch replaces the worker.
  await group('switch during the faithfulness check', h, async () => {
    await page.selectOption('[data-testid=method]', 'occlusion');
    await page.waitForFunction(() => document.querySelector('[data-testid=faithfulness]')?.getAttribute('data-state') === 'measuring',
      null, { timeout: RUN_MS, polling: 20 }).catch(() => info('switch during check: never saw the check running'));
    await play('switch during the check', [[null, 'saliency'], ['Mount Everest is the highest mountain in'], [null, 'attention'],
      [null, 'grad_x_input'], ['Mount Everest is the tallest mountain in'], [null, 'rollout']], 120);
  });
  await group('switch back and forth while typing', h, async () => {
    await page.click('[data-testid=editor]');
    await page.keyboard.press('End');
    const methods = ['saliency', 'attention', 'grad_x_input', 'rollout'];
    let text = await page.inputValue('[data-testid=editor]'), method = await page.inputValue('[data-testid=method]');
    const combos = [[text, method]];
    const m = await mark(page), t = await pageNow(page);
    for (const [i, word] of [' the', ' north', ' of', ' the', ' world'].entries()) {
      await page.keyboard.type(word, { delay: 15 });
      text += word;
      combos.push([text, method]);
      method = methods[i % methods.length];
      await page.selectOption('[data-testid=method]', method);
      combos.push([text, method]);
      await sleep(150);
    }
    await settled(page, m, RUN_MS);
    await sleep(1000);
    v = await mapView(page);
    checkSettledMap('typing and switching', v, text, method, labels);
    checkSamples('typing and switching', await recorded(page, t), labels, combos);
  });
  await shot(page, 'hardening-switch.png');
  noErrors(h);
  await h.context.close();
}

// ---------------------------------------------------------------------------------------------
// 3. Fifty edits: bounded memory (worker wasm, page wasm, JS heap, DOM, listeners).

// Ten texts of different lengths; edit i uses TEXTS[i % 10], so the first ten edits meet every
// length the later ones do.
const TEXTS = [
  'The capital of France is',
  'Water boils at a temperature of one hundred degrees',
  'She opened the door and saw',
  'In 1969, the first people to walk on the Moon were',
  'My favourite colour is',
  'The quick brown fox jumps over the lazy dog, and then the dog runs after the fox into the',
  'Two plus two equals',
  'The library closes at nine on weekdays, but on Sundays it opens only in the',
  'Cats like to sleep in the',
  'A good breakfast gives you energy for the whole',
];

// After a garbage collection: the page's JS heap, DOM nodes and listeners (CDP Performance
// metrics), the page's own wasm memory (the UI's Leptos runtime; every WebAssembly.Memory in
// the page's heap, found with Runtime.queryObjects) and the elements in the document.
async function pageMemory(page, cdp) {
  await cdp.send('HeapProfiler.collectGarbage');
  await cdp.send('HeapProfiler.collectGarbage');
  const { metrics } = await cdp.send('Performance.getMetrics');
  const m = Object.fromEntries(metrics.map((x) => [x.name, x.value]));
  const proto = await cdp.send('Runtime.evaluate', { expression: 'WebAssembly.Memory.prototype' });
  const { objects } = await cdp.send('Runtime.queryObjects', { prototypeObjectId: proto.result.objectId });
  const sum = await cdp.send('Runtime.callFunctionOn', { objectId: objects.objectId, returnByValue: true,
    functionDeclaration: 'function () { return [this.length, this.reduce((s, m) => s + m.buffer.byteLength, 0)]; }' });
  await cdp.send('Runtime.releaseObject', { objectId: objects.objectId });
  await cdp.send('Runtime.releaseObject', { objectId: proto.result.objectId });
  const elements = await page.evaluate(() => document.getElementsByTagName('*').length);
  return { heap: m.JSHeapUsedSize, nodes: m.Nodes, listeners: m.JSEventListeners, memories: sum.result.value[0], pageWasm: sum.result.value[1], elements };
}

async function memoryTests(labels) {
  const h = await fresh('hardening-memory');
  const { page } = h;
  await h.go();
  let v = await settled(page, 0, LOAD_AND_RUN_MS);
  if (!check('memory: the page loads and explains the example', v.state === 'done', brief(v))) return h;
  // One worker for all 50 runs: without the faithfulness check no edit replaces it (an edit
  // during a check would), so its wasm memory is the history of every run.
  v = await after(page, () => page.uncheck('[data-testid=faithfulness-toggle]'));
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Performance.enable');
  const workers = h.workers;
  const wasmSeen = [];   // the worker's wasm memory after each edit that was let finish
  let baseline = null, early = 0, finished = 0, interruptedRunning = 0, interruptedPause = 0;
  for (let i = 0; i < 50; i++) {
    const text = TEXTS[i % TEXTS.length];
    const m = await mark(page);
    // Every third edit is typed: the text without its last word is pasted, then the word typed
    // key by key (each key restarts the pause). The others are pasted.
    if (i % 3 === 1) {
      await page.fill('[data-testid=editor]', text.slice(0, text.lastIndexOf(' ')));
      await page.click('[data-testid=editor]');
      await page.keyboard.press('End');
      await page.keyboard.type(text.slice(text.lastIndexOf(' ')), { delay: 20 });
    } else {
      await page.fill('[data-testid=editor]', text);
    }
    const mode = i < 10 || i % 4 === 0 || i === 49 ? 'finish' : i % 4 === 1 ? 'running' : 'pause';
    if (mode === 'finish') {
      v = await settled(page, m, RUN_MS);
      if (v.state === 'done' && v.text === text) { finished++; wasmSeen.push({ i, bytes: v.wasm }); }
      else note('memory', `edit ${i}: ${brief(v)}`);
      if (i === 4) baseline = await pageMemory(page, cdp);
      if (i === 9) early = Math.max(...wasmSeen.map((w) => w.bytes));
    } else if (mode === 'running') {
      // The next edit comes while this one's run computes (it queues behind it).
      await waitState(page, 'running', 10 * S).then(() => interruptedRunning++, () => {});
    } else {
      await sleep(150);   // the next edit comes within the 400 ms pause: this run never starts
      interruptedPause++;
    }
  }
  // The last edit (49) put TEXTS[9] in the editor, as edit 9 did; edit 4's text, for the DOM
  // comparison, comes back once more.
  v = await after(page, () => page.fill('[data-testid=editor]', TEXTS[4]));
  await sleep(500);
  const end = await pageMemory(page, cdp);
  v = await mapView(page);
  const last = v.wasm;
  info(`memory: ${finished} runs let finish, ${interruptedRunning} interrupted while running, ${interruptedPause} within the pause; workers ${workers} -> ${h.workers}`);
  info(`memory: worker wasm after each finished run (MB): ${wasmSeen.map((w) => (w.bytes / 1e6).toFixed(0)).join(' ')} -> ${(last / 1e6).toFixed(0)}`);
  info(`memory: after edit 5 ${J(baseline)}; after 50 edits ${J(end)}`);
  check('memory: the edits were a mix of finished runs, runs interrupted while running and edits within the pause',
    finished >= 15 && interruptedRunning >= 5 && interruptedPause >= 5, `${finished}/${interruptedRunning}/${interruptedPause}`);
  check('memory: one worker served all the edits (no replacement)', h.workers === workers, `${workers} -> ${h.workers}`);
  // wasm memory never shrinks, so growth past the first ten runs' peak is memory kept across runs.
  check('memory: the worker\'s wasm memory after 50 edits is at most the first ten runs\' peak + 32 MB',
    Number.isFinite(early) && early > 0 && last <= early + 32e6, `first ten ${MB(early)}, end ${MB(last)}`);
  // The page keeps one result at a time: 45 more edits may not leave more than a few MB behind
  // (a result is a few KB; keeping ~150 KB per run would exceed these bounds).
  check('memory: the page\'s JS heap grew by less than 4 MB', end.heap - baseline.heap < 4e6, `${MB(baseline.heap)} -> ${MB(end.heap)}`);
  check('memory: the page\'s wasm memory (the UI) grew by at most 4 MB', end.pageWasm - baseline.pageWasm <= 4e6 && end.memories >= 1,
    `${MB(baseline.pageWasm)} -> ${MB(end.pageWasm)} (${end.memories} memories)`);
  check('memory: the same text shows the same number of elements as after edit 5', end.elements === baseline.elements, `${baseline.elements} -> ${end.elements}`);
  check('memory: DOM nodes (live, after GC) grew by less than 300', end.nodes - baseline.nodes < 300, `${baseline.nodes} -> ${end.nodes}`);
  check('memory: event listeners grew by less than 20', end.listeners - baseline.listeners < 20, `${baseline.listeners} -> ${end.listeners}`);
  checkSettledMap('memory: after 50 edits the page still answers', v, TEXTS[4], 'saliency', labels);
  await cdp.detach().catch(() => {});
  noErrors(h);
  await h.context.close();
}

// ---------------------------------------------------------------------------------------------
// 4 and 5. Requests stay on the page's origin; the Content-Security-Policy holds through a full
// flow and blocks what it must.

// Records every request of a context (pages, frames and workers), websockets, CSP violation
// events in every document, and console messages of pages and workers about the policy.
async function watchContext(h) {
  const w = { requests: [], sockets: [], cspConsole: [] };
  h.context.on('request', (r) => w.requests.push({ url: r.url(), t: Date.now(), worker: !r.frame?.() }));
  const onPage = (page) => {
    page.on('websocket', (s) => w.sockets.push(s.url()));
    page.on('console', (m) => { if (/Content.Security.Policy/i.test(m.text())) w.cspConsole.push(`page: ${m.text()}`); });
    page.on('worker', (wk) => wk.on('console', (m) => { if (/Content.Security.Policy/i.test(m.text())) w.cspConsole.push(`worker: ${m.text()}`); }));
  };
  h.context.on('page', onPage);
  onPage(h.page);
  await h.context.addInitScript(() => {
    window.__csp = [];
    document.addEventListener('securitypolicyviolation', (e) => window.__csp.push(`${e.violatedDirective} blocked ${e.blockedURI} (${e.sourceFile}:${e.lineNumber}) ${e.sample}`));
  });
  return w;
}
const foreign = (url) => !/^(data|blob):/.test(url) && new URL(url).origin !== ORIGIN;
const violations = (page) => page.evaluate(() => window.__csp.slice());

function parseCsp(text) {
  return Object.fromEntries((text || '').split(';').map((d) => d.trim().split(/\s+/)).filter((d) => d[0]).map(([k, ...v]) => [k.toLowerCase(), v]));
}

async function download(page, testid) {
  const [file] = await Promise.all([page.waitForEvent('download', { timeout: 30 * S }), page.click(`[data-testid=${testid}]`)]);
  return file.suggestedFilename();
}

// The second origin: scripts/serve.py --cors for models/, with its request log.
function startModelServer(dir) {
  const child = spawn('python3', [join(ROOT, 'scripts/serve.py'), '--cors', '--dir', dir, '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
  const log = [];
  child.stderr.on('data', (d) => { for (const line of d.toString().split('\n').filter(Boolean)) { log.push(line); note('model-server', line); } });
  return new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error('the second server did not start in 10 s')), 10 * S);
    child.stdout.on('data', (d) => {
      const m = /^serving (http\S+)$/m.exec(d.toString());
      if (!m) return;
      clearTimeout(timer);
      ok({ url: m[1], log, stop: () => (child.exitCode === null ? new Promise((done) => { child.once('exit', done); child.kill(); }) : Promise.resolve()) });
    });
    child.once('exit', (code) => fail(new Error(`the second server exited (${code})`)));
  });
}

async function originAndCspTests(labels) {
  const h = await fresh('hardening-csp');
  const { page } = h;
  const w = await watchContext(h);
  const [response] = await Promise.all([page.waitForResponse((r) => r.url() === new URL(URL_).href, { timeout: 30 * S }), h.go()]);
  let v = await settled(page, 0, LOAD_AND_RUN_MS);
  if (!check('csp: the page loads and explains the example under its policy', v.state === 'done' && v.current === 'true', brief(v))) return h;
  let links = {};

  await group('the policy', h, async () => {
    const meta = await page.$eval('meta[http-equiv="Content-Security-Policy"]', (e) => e.content).catch(() => null);
    const csp = parseCsp(meta);
    const header = response.headers()['content-security-policy'] || null;
    const workerHeader = (await page.request.get(new URL('worker.js', URL_).href)).headers()['content-security-policy'] || null;
    info(`policy: ${meta}`);
    check('csp: index.html has a Content-Security-Policy meta tag', !!meta, String(meta));
    check('csp: default-src \'none\': anything not listed is refused', J(csp['default-src']) === J(["'none'"]), J(csp['default-src']));
    // blob: workers: wasm-bindgen-rayon starts the multi-threaded engine's pool from blob: copies
    // of its own (same-origin) script.
    check('csp: scripts and workers only from the page\'s origin (workers also blob:), wasm allowed, no inline script or eval',
      J(csp['script-src']) === J(["'self'", "'wasm-unsafe-eval'"]) && J(csp['worker-src']) === J(["'self'", 'blob:']) && !csp['script-src-elem'] && !csp['script-src-attr'],
      J({ s: csp['script-src'], w: csp['worker-src'] }));
    check('csp: connect-src is the page\'s origin and http(s) URLs (models by URL), nothing else',
      J(csp['connect-src']) === J(["'self'", 'http:', 'https:']), J(csp['connect-src']));
    check('csp: styles from the page\'s origin; inline style only as attributes (the token colours)',
      J(csp['style-src']) === J(["'self'"]) && J(csp['style-src-attr']) === J(["'unsafe-inline'"]) && !csp['style-src-elem'], J({ s: csp['style-src'], a: csp['style-src-attr'] }));
    check('csp: images only data: and blob: (favicon, PNG export)', csp['img-src'] && csp['img-src'].every((x) => ['data:', 'blob:'].includes(x)), J(csp['img-src']));
    // The full page's header adds what only a header can say: no other site may frame it.
    check('csp: serve.py sends the same policy as a header, for the page (refusing frames) and for the worker\'s script',
      !!meta && header === `${meta}; frame-ancestors 'none'` && workerHeader === meta, J({ header, workerHeader }));
    check('csp: the boot script is a file, not inline', (await page.$$eval('script', (ss) => ss.filter((s) => !s.src).length)) === 0
      && (await page.$$eval('script[src]', (ss) => ss.length)) >= 1);
  });

  await group('a full flow', h, async () => {
    v = await after(page, () => page.fill('[data-testid=editor]', 'The Nile flows north into the'));
    v = await after(page, () => page.selectOption('[data-testid=method]', 'grad_x_input'));
    checkSettledMap('csp flow', v, 'The Nile flows north into the', 'grad_x_input', labels);
    await page.check('[data-testid=share-snapshot]');
    await page.click('[data-testid=share]');
    await page.waitForFunction(() => document.querySelector('[data-testid=share-link]').value.includes('#s=v1.'), null, { timeout: 10 * S });
    links.snapshot = await page.inputValue('[data-testid=share-link]');
    await page.click('[data-testid=embed]');
    await page.waitForFunction(() => /embed\.html#s=/.test(document.querySelector('[data-testid=embed-snippet]')?.value || ''), null, { timeout: 10 * S });
    links.embed = /src="([^"]+)"/.exec(await page.inputValue('[data-testid=embed-snippet]'))?.[1];
    await page.uncheck('[data-testid=share-snapshot]');
    await page.click('[data-testid=share]');
    await page.waitForFunction((old) => document.querySelector('[data-testid=share-link]').value !== old, links.snapshot, { timeout: 10 * S });
    links.plain = await page.inputValue('[data-testid=share-link]');
    const files = [];
    for (const f of ['json', 'csv', 'html', 'svg', 'png']) files.push(await download(page, `export-${f}`));
    check('csp flow: share links, the embed snippet and all five exports were made',
      /#s=v1\./.test(links.snapshot || '') && /embed\.html#s=v1\./.test(links.embed || '') && /#s=v1\./.test(links.plain || '') && files.length === 5,
      J({ links, files }));
    // The embed views: a snapshot (no model) and a plain link (loads the model and computes).
    for (const [name, link] of [['snapshot embed', links.embed], ['computing embed', links.plain.replace('#', 'embed.html#')]]) {
      const e = await h.context.newPage();
      e.on('pageerror', (err) => h.errors.push(`${name} pageerror: ${err.message}`));
      e.on('console', (m) => { note(`csp:${name}`, `${m.type()}: ${m.text()}`); if (m.type() === 'error') h.errors.push(`${name} console.error: ${m.text()}`); });
      await e.goto(link, { timeout: 30 * S });
      await e.waitForSelector('[data-testid=embed-view] [data-testid=token]', { timeout: LOAD_AND_RUN_MS });
      if (name === 'computing embed') {
        await e.waitForFunction(() => document.querySelector('[data-testid=heatmap]')?.getAttribute('data-current') === 'true'
          && !document.querySelector('[data-testid=snapshot]'), null, { timeout: LOAD_AND_RUN_MS, polling: 200 }).catch(() => {});
        await sleep(1000);
      }
      const ev = await violations(e);
      check(`csp flow: the ${name} renders with no policy violation`, (await e.$$('[data-testid=token]')).length > 0 && ev.length === 0, J(ev));
      await shot(e, `hardening-${name.replace(' ', '-')}.png`);
      await e.close();
    }
    const pv = await violations(page);
    check('csp flow: no securitypolicyviolation event in the page (load, runs, share, exports)', pv.length === 0, J(pv));
    check('csp flow: no console message about the policy from the pages or workers', w.cspConsole.length === 0, J(w.cspConsole.slice(0, 3)));
  });

  await group('requests stay on the page\'s origin', h, async () => {
    const urls = w.requests.map((r) => r.url);
    const away = urls.filter(foreign);
    check('origin: the recorder saw the page, its wasm, the worker script and the model the worker fetched',
      urls.some((u) => u.endsWith('.wasm')) && urls.some((u) => /\/worker\.js(\?|$)/.test(u)) && urls.some((u) => u.endsWith(`/${MODEL_FILE}`)),
      J(urls.slice(0, 12)));
    check(`origin: all ${urls.length} requests (page, embeds, workers) went to ${ORIGIN} (or data:/blob:)`, away.length === 0 && w.sockets.length === 0,
      J({ away: away.slice(0, 5), sockets: w.sockets }));
  });

  await group('a model by URL from another origin', h, async () => {
    const server = await startModelServer(join(ROOT, 'models'));
    try {
      const modelUrl = `${server.url}${MODEL_FILE}`;
      const since = Date.now(), logFrom = server.log.length, violationsFrom = (await violations(page)).length, consoleFrom = w.cspConsole.length;
      const m = await mark(page);
      await showModelPanel(page);
      await page.fill('[data-testid=model-url]', modelUrl);
      await page.click('[data-testid=model-load]');
      v = await settled(page, m, LOAD_AND_RUN_MS);
      const loadedFrom = await page.getAttribute('[data-testid=model-info]', 'data-url');
      check('by URL: the model loaded from the second origin and the text reran on it',
        loadedFrom === modelUrl && v.state === 'done' && v.current === 'true', `${loadedFrom} ${brief(v)}`);
      const away = w.requests.filter((r) => r.t >= since && foreign(r.url)).map((r) => r.url);
      check('by URL: the only request off the page\'s origin was the model\'s URL', away.length >= 1 && away.every((u) => u === modelUrl), J(away));
      const served = server.log.slice(logFrom).filter((l) => /"(GET|HEAD|POST|OPTIONS) /.test(l));
      check('by URL: the second server was asked only for the model', served.length >= 1 && served.every((l) => l.includes(`GET /${MODEL_FILE} `)), J(served));
      const pv = [...(await violations(page)).slice(violationsFrom), ...w.cspConsole.slice(consoleFrom)];
      check('by URL: no policy violation (connect-src allows http(s) URLs)', pv.length === 0, J(pv));
    } finally { await server.stop(); }
  });
  noErrors(h);   // before the deliberate violations below, which the browser logs as errors

  await group('the policy blocks what it must', h, async () => {
    const before = (await violations(page)).length;
    const r = await page.evaluate(async () => {
      const out = {};
      // An injected inline script does not run.
      const s = document.createElement('script');
      s.textContent = 'window.__injected = true;';
      document.head.append(s);
      // An inline event handler does not run (the image itself, data:, loads).
      const div = document.createElement('div');
      div.innerHTML = '<img src="data:image/gif;base64,R0lGODlhAQABAAAAACw=" onload="window.__handler = true" onerror="window.__handler = true">';
      document.body.append(div);
      // eval in a later task (code evaluated by the test harness itself may eval).
      await new Promise((done) => setTimeout(() => { try { eval('window.__evaled = true'); } catch (e) { out.evalError = e.name; } done(); }, 0));
      // fetch to a non-http scheme is refused by connect-src.
      out.dataFetch = await fetch('data:text/plain,hello').then(() => 'loaded', (e) => `refused: ${e.message}`);
      await new Promise((done) => setTimeout(done, 300));
      div.remove(); s.remove();
      out.injected = window.__injected === true; out.handler = window.__handler === true; out.evaled = window.__evaled === true;
      return out;
    });
    const ev = (await violations(page)).slice(before);
    info(`blocked: ${J(r)}; violations ${J(ev.map((x) => x.split(' ')[0]))}`);
    check('csp: an injected inline <script> does not run and is reported', !r.injected && ev.some((x) => /^script-src(-elem)? blocked inline/.test(x)), J({ r, ev }));
    check('csp: an inline event handler does not run and is reported', !r.handler && ev.some((x) => /^script-src(-attr)? blocked inline/.test(x)), J({ r, ev }));
    check('csp: eval is refused', !r.evaled && r.evalError === 'EvalError' && ev.some((x) => /blocked eval/.test(x)), J({ r, ev }));
    check('csp: fetch of a data: URL is refused by connect-src', /^refused/.test(r.dataFetch) && ev.some((x) => /^connect-src blocked data/.test(x)), J({ r, ev }));
    const worker = page.workers()[0];
    const inWorker = worker ? await worker.evaluate(() => fetch('data:text/plain,hello').then(() => 'loaded', (e) => `refused: ${e.message}`)) : 'no worker';
    check('csp: the worker is under the policy too (serve.py\'s header): its fetch of a data: URL is refused', /^refused/.test(inWorker), inWorker);
  });
  await h.context.close();
}

// ---------------------------------------------------------------------------------------------

try {
  info(`${await browserVersion()} -> ${URL_}`);
  if (!check('the GGUF vocabulary (the oracle for token texts) was read', !!vocab, join(DIST, 'models', MODEL_FILE))) throw new Error('no vocabulary');
  // Method labels as the page lists them (the legend names a map's method by its label).
  const probe = await fresh('hardening-labels');
  await probe.go();
  await probe.page.waitForSelector('[data-testid=method] option', { state: 'attached', timeout: 60 * S });
  const labels = Object.fromEntries(await probe.page.$$eval('[data-testid=method] option', (os) => os.map((o) => [o.value, o.textContent.trim()])));
  await probe.context.close();
  check('the method select lists the ten methods with labels', Object.keys(labels).length === 10 && Object.values(labels).every(Boolean), J(labels));
  await group('cancel', null, () => cancelTests(labels));
  await group('switch', null, () => switchTests(labels));
  await group('memory', null, () => memoryTests(labels));
  await group('origin and csp', null, () => originAndCspTests(labels));
} catch (e) {
  check('e2e harness', false, e.stack || e.message);
} finally {
  await close();
}
finish();

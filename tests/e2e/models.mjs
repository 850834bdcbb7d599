#!/usr/bin/env node
// Browser end-to-end tests of "bring your own model" in headless Chromium: presets and their
// confirmation, loading by URL from another origin (CORS), the model cache (loading that URL again
// needs no network), deleting from the cache, a local file, the memory guard before a run, and the
// failures that must keep the text and the model loaded before (404, CORS refusal, corrupt file).
//
//   node tests/e2e/models.mjs URL [DIST_DIR]
//
// URL serves the built page. The test starts a second server with CORS headers on another port
// (scripts/serve.py --cors) for a copy of the default model, and stops it to prove that the cache
// answers. Prints `ok  name` / `FAIL name details` per check and `N passed, M failed`; exits 1 on
// any failure. Artifacts go to $TEST_OUT (default <repo>/test-out): models.png, fail-*.png,
// e2e-models-console.log.
import { ROOT, URL_, DIST, OUT, S, createSuite, mark, settle, showModelPanel, withU32, MODEL_FILE, MODEL_BYTES, MODEL_SHA256 } from './lib.mjs';
import { spawn } from 'node:child_process';
import { copyFileSync, createReadStream, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const LOAD_AND_RUN_MS = 150 * S;

const EXAMPLE = 'The Eiffel Tower is located in the city of';
const EXAMPLE_IDS = [504, 414, 46682, 18669, 314, 3807, 281, 260, 2240, 282];
const SERVED_NAME = 'byo-SmolLM2.gguf';      // the copy on the CORS server
const LOCAL_NAME = 'local-SmolLM2.gguf';     // the copy picked as a local file
const MANY_HEADS_NAME = 'many-heads.gguf';    // the default model read as 288 heads (memory guard)

mkdirSync(OUT, { recursive: true });
const { note, check, info, shot, group, noErrors, openPage, browserVersion, close, finish } =
  createSuite({ url: URL_, out: OUT, log: join(OUT, 'e2e-models-console.log'), name: 'models e2e', watchdogS: 1200 });
const J = (v) => JSON.stringify(v);

// ---------------------------------------------------------------------------------------------
// The second origin: serve.py --cors on a free port, serving a directory with the model.

function startCorsServer(dir) {
  const child = spawn('python3', [join(ROOT, 'scripts/serve.py'), '--cors', '--dir', dir, '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stderr.on('data', (d) => note('cors-server', d.toString().trim()));
  return new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error('the CORS server did not start in 10 s')), 10 * S);
    child.stdout.on('data', (d) => {
      const m = /^serving (http\S+)$/m.exec(d.toString());
      if (!m) return;
      clearTimeout(timer);
      const running = () => child.exitCode === null && child.signalCode === null;
      ok({ url: m[1], stop: () => (running() ? new Promise((done) => { child.once('exit', done); child.kill(); }) : Promise.resolve()) });
    });
    child.once('exit', (code) => fail(new Error(`the CORS server exited (${code})`)));
  });
}

// A third origin that sends a file slowly (about 10 MB/s, with CORS headers), so that a download
// can be cancelled while it runs. `served` says whether each response was sent to its end.
async function startSlowServer(file, bytes) {
  const served = [];
  const server = createServer(async (req, res) => {
    const record = { url: req.url, complete: false };
    served.push(record);
    res.writeHead(200, { 'Access-Control-Allow-Origin': '*', 'Content-Type': 'application/octet-stream',
                         'Content-Length': bytes, 'Cache-Control': 'no-cache' });
    let closed = false;
    res.on('close', () => { closed = true; });
    for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20 })) {
      if (closed) return;
      if (!res.write(chunk)) await Promise.race([once(res, 'drain'), once(res, 'close')]);
      await sleep(100);
    }
    record.complete = !closed;
    res.end();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { url: `http://127.0.0.1:${server.address().port}/`, served, stop: () => { server.closeAllConnections(); server.close(); } };
}

// The model with its `general.architecture` ("llama") renamed to another five-letter family: a
// valid GGUF the engine must refuse by name.
function withArchitecture(gguf, family) {
  const key = Buffer.from('general.architecture');
  const at = gguf.indexOf(key);
  if (at < 0) throw new Error('no general.architecture in the model');
  const value = at + key.length + 4 + 8;    // the value's type (u32) and length (u64), then its bytes
  if (gguf.toString('latin1', value, value + 5) !== 'llama') throw new Error('the model is not a llama');
  const copy = Buffer.from(gguf);
  copy.write(family, value, 'latin1');
  return copy;
}

// ---------------------------------------------------------------------------------------------
// Reading the page

const modelInfo = (page) => page.$eval('[data-testid=model-info]', (e) => ({
  name: e.dataset.name, arch: e.dataset.arch, bytes: Number(e.dataset.bytes), sha256: e.dataset.sha256,
  source: e.dataset.source, url: e.dataset.url, fitting: Number(e.dataset.fittingTokens),
}));
const cachedModels = (page) => page.$$eval('[data-testid=cached-model]', (es) => es.map((e) => ({ url: e.dataset.url, bytes: Number(e.dataset.bytes) })));
const tokenIds = (snap) => snap.tokens.map((t) => Number(t.id));
const brief = (snap) => `state=${snap.state} message=${J(snap.message)}`;

// Load through the panel and wait until the page settles (the text reruns on the new model).
async function loadUrl(page, url) {
  const m = await mark(page);
  await showModelPanel(page);
  await page.fill('[data-testid=model-url]', url);
  await page.click('[data-testid=model-load]');
  return settle(page, m, LOAD_AND_RUN_MS);
}
async function loadFile(page, path) {
  const m = await mark(page);
  await page.setInputFiles('[data-testid=model-file]', path);
  return settle(page, m, LOAD_AND_RUN_MS);
}

// Records, in the page, whether the download speed and the cancel button were shown.
const watchLoadProgress = (page) => page.evaluate(() => {
  const seen = (window.__loadProgress = { speeds: [], cancel: false });
  new MutationObserver(() => {
    const speed = document.querySelector('[data-testid=download-speed]');
    if (speed && speed.dataset.bytesPerSecond) seen.speeds.push(Number(speed.dataset.bytesPerSecond));
    if (document.querySelector('[data-testid=model-cancel]')) seen.cancel = true;
  }).observe(document, { subtree: true, childList: true, attributes: true, attributeFilter: ['data-bytes-per-second'] });
});

// ---------------------------------------------------------------------------------------------

async function modelTests(dir, corsServer) {
  const pageOrigin = new URL(URL_).origin;
  const corsModel = `${corsServer.url}${SERVED_NAME}`;
  const h = await openPage('models', '', {
    timeout: 30 * S,
    allowConsole: [
      /status of 404/, /does-not-exist\.gguf/,                       // the 404 check
      /CORS policy/, /Failed to fetch/, /ERR_FAILED/,                // the CORS refusal check
      /ERR_CONNECTION_REFUSED/,                                      // the stopped CORS server, if anything asked it
    ],
  });
  const { page } = h;
  const requests = [];
  page.on('request', (r) => requests.push(r.url()));
  page.context().on('request', (r) => { if (!requests.includes(r.url())) requests.push(r.url()); });

  let snap = await settle(page, 0, LOAD_AND_RUN_MS);
  check('the default model loads and the first run is done', snap.state === 'done', brief(snap));

  await group('default model info', h, async () => {
    const mi = await modelInfo(page);
    check('model-info names the default model (llama, size, sha256, downloaded)',
      mi.name === MODEL_FILE && mi.arch === 'llama' && mi.bytes === MODEL_BYTES && mi.sha256 === MODEL_SHA256 && mi.source === 'network', J(mi));
    check('model-info: every text up to the page limit fits in memory', mi.fitting === 512, J(mi));
  });

  await group('presets', h, async () => {
    const options = await page.$$eval('[data-testid=model-preset] option', (os) => os.map((o) => ({ url: o.dataset.url, bytes: Number(o.dataset.bytes), text: o.textContent })));
    info(`presets: ${options.map((o) => o.text).join(' | ')}`);
    check('presets list the default model first and at least four more, each with a size',
      options.length >= 5 && options[0].url.endsWith(MODEL_FILE) && options.every((o) => o.bytes > 0 && /MB|GB/.test(o.text)), J(options));
    // A preset that would download asks first and shows its size; cancelling downloads nothing.
    const before = requests.length;
    await showModelPanel(page);
    await page.selectOption('[data-testid=model-preset]', '1');
    await page.click('[data-testid=preset-load]');
    const confirm = await page.locator('[data-testid=preset-confirm]').textContent({ timeout: 5 * S });
    check('a non-default preset asks for confirmation, naming its size', /about \d+ MB|about [\d.]+ GB/.test(confirm), J(confirm));
    await page.click('[data-testid=preset-confirm] button.link');
    check('cancelling the confirmation downloads nothing', (await page.locator('[data-testid=preset-confirm]').count()) === 0
      && !requests.slice(before).some((u) => u.startsWith('https://')), J(requests.slice(before)));
  });

  await group('load by URL from another origin', h, async () => {
    await watchLoadProgress(page);
    snap = await loadUrl(page, corsModel);
    const mi = await modelInfo(page);
    check('loading by URL: model-info has the name, arch llama, size and sha256',
      mi.name === SERVED_NAME && mi.arch === 'llama' && mi.bytes === MODEL_BYTES && mi.sha256 === MODEL_SHA256, J(mi));
    check('loading by URL: it came from the network', mi.source === 'network' && mi.url === corsModel, J(mi));
    check('loading by URL: the text reruns on the new model (done, same tokens)',
      snap.state === 'done' && J(tokenIds(snap)) === J(EXAMPLE_IDS), `${brief(snap)} ids=${J(tokenIds(snap))}`);
    check('the request recorder saw the download (so its silence below means something)', requests.includes(corsModel), J(requests.slice(-5)));
    const progress = await page.evaluate(() => window.__loadProgress);
    check('the download showed its speed and a cancel button', progress.speeds.some((s) => s > 0) && progress.cancel, J(progress));
    info(`download speeds (MB/s): ${progress.speeds.map((s) => (s / 1e6).toFixed(0)).join(' ')}`);
    await page.waitForSelector(`[data-testid=cached-model][data-url="${corsModel}"]`, { timeout: 10 * S }).catch(() => {});
    const cached = await cachedModels(page);
    check('cached-models lists the URL with its size', cached.some((c) => c.url === corsModel && c.bytes === MODEL_BYTES), J(cached));
  });

  await group('load a local file', h, async () => {
    snap = await loadFile(page, join(dir, LOCAL_NAME));
    const mi = await modelInfo(page);
    check('a local file loads: name, arch, size, sha256, source file',
      mi.name === LOCAL_NAME && mi.arch === 'llama' && mi.bytes === MODEL_BYTES && mi.sha256 === MODEL_SHA256 && mi.source === 'file', J(mi));
    check('a local file: the run is done', snap.state === 'done' && J(tokenIds(snap)) === J(EXAMPLE_IDS), brief(snap));
  });

  await group('load the URL again from the cache, its server stopped', h, async () => {
    await corsServer.stop();
    const before = requests.length;
    snap = await loadUrl(page, corsModel);
    const mi = await modelInfo(page);
    const asked = requests.slice(before).filter((u) => u === corsModel || u.startsWith(corsServer.url));
    check('the cached model loads with its server stopped (source cache)',
      mi.name === SERVED_NAME && mi.source === 'cache' && mi.sha256 === MODEL_SHA256 && mi.bytes === MODEL_BYTES, `${J(mi)} ${brief(snap)}`);
    check('no network request for the cached model', asked.length === 0, J(asked));
    check('the cached model runs', snap.state === 'done' && J(tokenIds(snap)) === J(EXAMPLE_IDS), brief(snap));
  });

  await group('delete from the cache', h, async () => {
    await showModelPanel(page);
    await page.click(`[data-testid=cached-model][data-url="${corsModel}"] [data-testid=cached-delete]`);
    await page.waitForSelector(`[data-testid=cached-model][data-url="${corsModel}"]`, { state: 'detached', timeout: 10 * S }).catch(() => {});
    const cached = await cachedModels(page);
    const state = await page.$eval('[data-testid=cached-models]', (e) => e.dataset.state);
    check('deleting removes the model from cached-models', state === 'ready' && !cached.some((c) => c.url === corsModel), `${state} ${J(cached)}`);
  });

  await group('the default preset loads without asking', h, async () => {
    const m = await mark(page);
    await showModelPanel(page);
    await page.selectOption('[data-testid=model-preset]', '0');
    await page.click('[data-testid=preset-load]');
    snap = await settle(page, m, LOAD_AND_RUN_MS);
    const mi = await modelInfo(page);
    check('the default preset loads, from the model cache (stored by the first load)',
      mi.name === MODEL_FILE && mi.source === 'cache' && mi.sha256 === MODEL_SHA256 && snap.state === 'done', `${J(mi)} ${brief(snap)}`);
  });

  // Each failure: an error that says what happened, the text kept, the model loaded before still
  // loaded and usable. A worker busy with a run (here: the faithfulness check after it) is
  // replaced and the new one loads the previous model again; an idle worker keeps it.
  async function failedLoad(name, load, mustSay, { idleWorker }) {
    await group(name, h, async () => {
      const before = await modelInfo(page), workers = h.workers;
      snap = await load();
      if (idleWorker) check(`${name}: the idle worker kept its model (no new worker)`, h.workers === workers, `${h.workers - workers} new`);
      check(`${name}: error state saying ${mustSay}`, snap.state === 'error' && mustSay.test(snap.message || ''), brief(snap));
      check(`${name}: the text is kept`, snap.editor === EXAMPLE, J(snap.editor));
      const after = await modelInfo(page);
      check(`${name}: the model loaded before is still shown`, after.name === before.name && after.sha256 === before.sha256, J(after));
      const m = await mark(page);
      await page.fill('[data-testid=editor]', 'The capital of France is');
      snap = await settle(page, m, LOAD_AND_RUN_MS);
      check(`${name}: the model loaded before still runs`, snap.state === 'done' && snap.tokens.length === 5, brief(snap));
      const m2 = await mark(page);
      await page.fill('[data-testid=editor]', EXAMPLE);
      await settle(page, m2, LOAD_AND_RUN_MS);
    });
  }
  // Right after a run the worker still measures faithfulness: it is replaced.
  await failedLoad('404 URL', () => loadUrl(page, `${URL_}does-not-exist.gguf`), /404/, { idleWorker: false });
  await group('faithfulness off, so the worker is idle after each run', h, async () => {
    const m = await mark(page);
    await page.click('[data-testid=faithfulness-toggle]');
    snap = await settle(page, m, LOAD_AND_RUN_MS);
    check('faithfulness off: the run is done', snap.state === 'done', brief(snap));
  });
  // The page's own server sends no CORS headers: from another origin (localhost) it is refused.
  const otherOrigin = `${pageOrigin.replace('127.0.0.1', 'localhost')}/models/${MODEL_FILE}`;
  await failedLoad('CORS refusal', () => loadUrl(page, otherOrigin), /CORS/, { idleWorker: true });
  await failedLoad('corrupt file', () => loadFile(page, join(dir, 'corrupt.gguf')), /GGUF/, { idleWorker: true });
  await failedLoad('unsupported architecture', () => loadFile(page, join(dir, 'mamba.gguf')),
    /architecture "mamba" is not supported/, { idleWorker: true });
  // A file dropped on the page loads like a picked one (a small text file here: it is refused).
  await failedLoad('dropped file', async () => {
    const m = await mark(page);
    await page.evaluate(() => {
      const transfer = new DataTransfer();
      transfer.items.add(new File(['not a model\n'.repeat(1000)], 'dropped.gguf'));
      document.body.dispatchEvent(new DragEvent('drop', { dataTransfer: transfer, bubbles: true, cancelable: true }));
    });
    return settle(page, m, LOAD_AND_RUN_MS);
  }, /starts with "not a mo"/, { idleWorker: true });

  await group('cancel a download', h, async () => {
    const slow = await startSlowServer(join(dir, LOCAL_NAME), MODEL_BYTES);
    try {
      const slowModel = `${slow.url}slow-SmolLM2.gguf`, before = await modelInfo(page), workers = h.workers;
      const m = await mark(page);
      await showModelPanel(page);
      await page.fill('[data-testid=model-url]', slowModel);
      await page.click('[data-testid=model-load]');
      await page.waitForFunction(() => Number(document.querySelector('[data-testid=progress]')?.dataset.loaded) > 5e6,
        null, { timeout: 60 * S, polling: 100 });
      const progress = await page.$eval('[data-testid=progress]', (e) => ({ loaded: Number(e.dataset.loaded), total: Number(e.dataset.total) }));
      const speed = await page.$eval('[data-testid=download-speed]', (e) => e.textContent);
      check('a slow download shows bytes, the total and the speed', progress.total === MODEL_BYTES && progress.loaded > 0 && /MB\/s/.test(speed),
        `${J(progress)} speed=${J(speed)}`);
      await page.click('[data-testid=model-cancel]');
      snap = await settle(page, m, 30 * S);
      check('cancel: the status says the loading was cancelled (not an error)', snap.state === 'ready' && /cancel/i.test(snap.message || ''), brief(snap));
      check('cancel: the text is kept', snap.editor === EXAMPLE, J(snap.editor));
      const after = await modelInfo(page);
      check('cancel: the model loaded before stays, in the same worker', after.sha256 === before.sha256 && after.name === before.name
        && h.workers === workers, `${J(after)} new workers: ${h.workers - workers}`);
      await sleep(500);
      check('cancel: the download stopped before its end', slow.served.length === 1 && !slow.served[0].complete, J(slow.served));
      const cached = await cachedModels(page);
      check('cancel: nothing was stored in the cache', !cached.some((c) => c.url === slowModel), J(cached));
      const m2 = await mark(page);
      await page.fill('[data-testid=editor]', 'The capital of France is');
      snap = await settle(page, m2, LOAD_AND_RUN_MS);
      check('cancel: the model still runs', snap.state === 'done' && snap.tokens.length === 5, brief(snap));
      const m3 = await mark(page);
      await page.fill('[data-testid=editor]', EXAMPLE);
      await settle(page, m3, LOAD_AND_RUN_MS);
    } finally {
      slow.stop();
    }
  });

  await group('memory guard before a run', h, async () => {
    // The default model fits every method at 512 tokens. A variant with 288 heads of width 2 (the
    // same weights; 32 times the attention maps) does not: ~480 tokens need more than the limit.
    snap = await loadFile(page, join(dir, MANY_HEADS_NAME));
    const many = await modelInfo(page);
    check('a model with large attention maps loads, with fewer fitting tokens than the page allows',
      many.name === MANY_HEADS_NAME && many.fitting > 16 && many.fitting < 512, J(many));
    let m = await mark(page);
    await page.selectOption('[data-testid=method]', 'integrated_gradients');
    snap = await settle(page, m, LOAD_AND_RUN_MS);
    const long = Array(50).fill(EXAMPLE).join(' ');   // ~500 tokens, within the page's 512
    m = await mark(page);
    await page.fill('[data-testid=editor]', long);
    snap = await settle(page, m, LOAD_AND_RUN_MS);
    const fits = /At most (\d+) tokens fit/.exec(snap.message || '');
    check('a run that would not fit in memory is refused, naming a length that fits',
      snap.state === 'error' && /memory/.test(snap.message) && fits && Number(fits[1]) > 16 && Number(fits[1]) < 500, brief(snap));
    check('memory guard: the text is kept', snap.editor === long, `${snap.editor?.length} chars`);
    info(`memory guard: ${snap.message}`);
    m = await mark(page);
    await page.fill('[data-testid=editor]', EXAMPLE);
    await settle(page, m, LOAD_AND_RUN_MS);
    m = await mark(page);
    await page.selectOption('[data-testid=method]', 'saliency');
    snap = await settle(page, m, LOAD_AND_RUN_MS);
    check('memory guard: a text that fits runs again', snap.state === 'done', brief(snap));
  });

  await shot(page, 'models.png');
  noErrors(h);
  await h.context.close();
}

// ---------------------------------------------------------------------------------------------

const dir = mkdtempSync(join(tmpdir(), 'salient-models-e2e-'));
let corsServer = null;
try {
  info(`${await browserVersion()} -> ${URL_}`);
  const model = [join(DIST, 'models', MODEL_FILE), join(ROOT, 'models', MODEL_FILE)].find(existsSync);
  if (!model) throw new Error(`no ${MODEL_FILE} in ${DIST}/models or models/`);
  symlinkSync(resolve(model), join(dir, SERVED_NAME));
  copyFileSync(model, join(dir, LOCAL_NAME));          // a file input reports the picked path's name
  writeFileSync(join(dir, 'corrupt.gguf'), randomBytes(1 << 20));
  writeFileSync(join(dir, 'mamba.gguf'), withArchitecture(readFileSync(model), 'mamba'));
  // 288 × 2 = the width; 96 key-value heads × 2 = the key and value projections' 192 rows.
  writeFileSync(join(dir, MANY_HEADS_NAME),
    withU32(withU32(readFileSync(model), 'llama.attention.head_count', 288), 'llama.attention.head_count_kv', 96));
  corsServer = await startCorsServer(dir);
  info(`CORS server ${corsServer.url} serves ${dir}`);
  await group('models', null, () => modelTests(dir, corsServer));
} catch (e) {
  check('models e2e harness', false, e.stack || e.message);
} finally {
  if (corsServer) await corsServer.stop().catch(() => {});
  rmSync(dir, { recursive: true, force: true });
  await close();
}
finish();

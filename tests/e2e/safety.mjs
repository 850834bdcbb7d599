#!/usr/bin/env node
// Browser end-to-end tests of what comes from outside: crafted links, imported files, query
// parameters, oversized downloads, long texts, framing, and bugs that abort the wasm. Each case
// must end in a clear message or a correct page, never a blank or hung page; after each, an edit
// must still give a new map.
//
//   node tests/e2e/safety.mjs URL [DIST_DIR]
//
// The links are written here (v1 = base64url(raw deflate(JSON)), as src/state/link.rs). Prints
// `ok  name` / `FAIL name details` per check and `N passed, M failed`; exits 1 on any failure.
// Artifacts go to $TEST_OUT (default <repo>/test-out): safety-*.png, e2e-safety-console.log.
import { ROOT, URL_, DIST, OUT, S, createSuite, hostPage, mark, settle, MODEL_FILE, MODEL_SHA256, MODEL_URL } from './lib.mjs';
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { deflateRawSync, inflateRawSync } from 'node:zlib';
import { join } from 'node:path';

const LOAD_AND_RUN_MS = 150 * S;
const RUN_MS = 90 * S;
const EXAMPLE = 'The Eiffel Tower is located in the city of';
const J = (v) => JSON.stringify(v);

mkdirSync(OUT, { recursive: true });
const { note, check, skip, info, shot, group, noErrors, openPage, close, finish } =
  createSuite({ url: URL_, out: OUT, log: join(OUT, 'e2e-safety-console.log'), name: 'safety e2e', watchdogS: 1800 });

const encode = (state) => 'v1.' + deflateRawSync(Buffer.from(JSON.stringify(state))).toString('base64url');
const decode = (payload) => JSON.parse(inflateRawSync(Buffer.from(payload.replace(/^v1\./, ''), 'base64url')).toString());
const linkTo = (state, path = '') => new URL(`${path}#s=${encode(state)}`, URL_).href;
const defaultModel = { url: { url: MODEL_URL } };
const brief = (snap) => `state=${snap.state} message=${J(snap.message)}`;

// A snapshot as the page writes one (src/state/shared.rs).
function snapshotOf(texts, { method = 'saliency', signed = false, scores = null, continuation = null } = {}) {
  const target = { id: 7, text: ' x', prob: 0.5 };
  const q = scores || texts.map((_, i) => Math.round(32767 * (i + 1) / texts.length));
  return { tokens: { ids: texts.map((_, i) => 1000 + i), texts }, target, kind: 'prob', method, signed, value: 0.5,
           top_k: [target], scores: { max: 0.5, q }, ...(continuation ? { continuation } : {}) };
}

// A fresh page at `link`, recording requests, dialogs and the page's own errors.
async function openLink(scope, link, { allowConsole, setup } = {}) {
  const h = await openPage(scope, 'about:blank', { allowConsole, timeout: 30 * S, setup });
  h.requests = [];
  h.page.on('request', (r) => h.requests.push(r.url()));
  note(scope, `goto ${link.slice(0, 160)}… (${link.length} characters)`);
  await h.page.goto(link, { timeout: 30 * S });
  return h;
}

// The page works after whatever it was opened with: no crash notice, and an edit gives a map.
async function stillWorks(h, name) {
  const { page } = h;
  const crashed = await page.$$('[data-testid=crash]');
  await page.waitForSelector('[data-testid=editor]', { timeout: 30 * S });
  const since = await mark(page);
  await page.fill('[data-testid=editor]', 'The capital of France is');
  const snap = await settle(page, since, LOAD_AND_RUN_MS);
  check(`${name}: the page still works (an edit gives a new map)`, crashed.length === 0 && snap.state === 'done'
    && snap.tokens.length > 0 && snap.editor === 'The capital of France is', brief(snap));
  return snap;
}

// The page's main thread answers within `ms` (a round trip of page.evaluate).
async function answersWithin(page, ms) {
  const t0 = Date.now();
  await page.evaluate(() => 1);
  return Date.now() - t0 <= ms;
}

// ---------------------------------------------------------------------------------------------
// 1. A string from a link cut by byte position: a sha256 with multi-byte characters.

async function multiByteHash() {
  const sha = 'é'.repeat(6) + 'a'.repeat(52);   // 64 characters, 70 bytes: byte 12 is inside 'é'
  const h = await openLink('safety-sha', linkTo({ model: { file: { name: 'm.gguf', sha256: sha, bytes: 1 } },
    settings: { text: 'Hello there' } }));
  await h.page.waitForSelector('[data-testid=link-error]', { timeout: 30 * S });
  const message = await h.page.textContent('[data-testid=link-error]');
  check('1. a link with a multi-byte sha256 gives a message, not a blank page', /sha256 must be 64 lowercase hex digits/.test(message), message);
  await stillWorks(h, '1');
  noErrors(h);
  await h.context.close();
}

// 2. A snapshot with an empty continuation.
async function emptyContinuation() {
  const snapshot = snapshotOf(['Hello', ' there'], { continuation: { tokens: { ids: [], texts: [] }, rows: [] } });
  const h = await openLink('safety-continuation', linkTo({ model: defaultModel, settings: { text: 'Hello there' }, snapshot }));
  await h.page.waitForSelector('[data-testid=link-error]', { timeout: 30 * S });
  const message = await h.page.textContent('[data-testid=link-error]');
  check('2. a snapshot with an empty continuation is refused with a message', /cannot be shown: the result it holds is inconsistent/.test(message), message);
  await stillWorks(h, '2');
  noErrors(h);
  await h.context.close();
}

// 3. A compare list with the same method thousands of times, and a page that answers meanwhile.
async function hugeCompareList() {
  const compare = [...Array(3000).fill('saliency'), ...Array(3000).fill('grad_x_input'), 'no-such-method'];
  const h = await openLink('safety-compare', linkTo({ model: defaultModel, settings: { text: EXAMPLE, compare, faithfulness: false } }));
  const { page } = h;
  const note_ = await page.waitForSelector('[data-testid=link-adjusted]', { timeout: 30 * S });
  check('3. the page says the link asked for more than it does', /comparison listed 6001 methods; comparing the 2 known ones/.test(await note_.textContent()));
  // While the model loads and the maps compute, the page answers within 2 s, every time.
  let slowest = 0;
  const t0 = Date.now();
  while (Date.now() - t0 < 8 * S) {
    const t = Date.now();
    await page.evaluate(() => 1);
    slowest = Math.max(slowest, Date.now() - t);
    await sleep(200);
  }
  const snap = await settle(page, 0, LOAD_AND_RUN_MS);
  const maps = await page.$$eval('[data-testid=compare-map]', (e) => e.map((m) => m.getAttribute('data-method')));
  const agreements = (await page.$$('[data-testid=agreement]')).length;
  check('3. each method is compared once: two maps, one agreement', snap.state === 'done'
    && J(maps) === J(['saliency', 'grad_x_input']) && agreements === 1, J({ maps, agreements, state: snap.state }));
  check('3. the page answered within 2 s throughout', slowest <= 2000, `slowest ${slowest} ms`);
  // An edit during a long run (integrated gradients with its largest budget) is answered at once.
  await page.fill('[data-testid=editor]', 'The capital of France is a city called');
  await page.selectOption('[data-testid=method]', 'integrated_gradients');
  await page.fill('[data-testid=param-steps]', '1024');
  await page.waitForSelector('[data-testid=status][data-state=running]', { timeout: 10 * S });
  await sleep(1500);
  const t1 = Date.now();
  await page.fill('[data-testid=editor]', 'Paris is the capital of');
  const answered = await page.inputValue('[data-testid=editor]');
  check('3. an edit while a long run computes is answered within 2 s', Date.now() - t1 <= 2000 && answered === 'Paris is the capital of'
    && await answersWithin(page, 2000), `${Date.now() - t1} ms`);
  await page.click('[data-testid=cancel]');
  await shot(page, 'safety-compare.png');
  noErrors(h);
  await h.context.close();
}

// 3. The largest result a link can hold: a one-token text with 511 continuation tokens, whose
// matrix has 511 rows. The page answers within 2 s while it draws.
async function largestMatrix() {
  const texts = ['t0'], more = Array.from({ length: 511 }, (_, i) => ` c${i}`);
  const continuation = { tokens: { ids: more.map((_, i) => 2000 + i), texts: more },
    rows: more.map((_, j) => ({ target: { id: 2000 + j, text: more[j], prob: 0.5 }, scores: { max: 0.5, q: Array.from({ length: 1 + j }, (_, i) => 1000 * (i % 7)) } })) };
  const h = await openLink('safety-matrix', linkTo({ model: defaultModel, settings: { text: 't0' },
    snapshot: snapshotOf(texts, { continuation }) }), { allowConsole: [/Failed to load resource/, /ERR_FAILED/],
    setup: (context) => context.route('**/*.gguf', (r) => r.abort()) });
  const { page } = h;
  let slowest = 0;
  const t0 = Date.now();
  while (Date.now() - t0 < 5 * S && !(await page.$('[data-testid=matrix-row]'))) {
    const t = Date.now();
    await page.evaluate(() => 1);
    slowest = Math.max(slowest, Date.now() - t);
    await sleep(100);
  }
  const rows = (await page.$$('[data-testid=matrix-row]')).length;
  check('3. a link\'s 511-row matrix is drawn, and the page answers within 2 s meanwhile', rows === 511 && slowest <= 2000,
    `${rows} rows, slowest answer ${slowest} ms`);
  const t = Date.now();
  await page.locator('[data-testid=matrix-row]').nth(300).click();
  check('3. choosing a row of it is answered within 2 s', Date.now() - t <= 2000
    && (await page.$$('[data-testid=token]')).length === 301, `${Date.now() - t} ms`);
  await shot(page, 'safety-matrix.png');
  noErrors(h);
  await h.context.close();
}

// 4. `?model=` naming a model on another origin asks first, naming its host.
async function queryModel() {
  const foreign = 'http://localhost:9/elsewhere.gguf';
  const h = await openLink('safety-query-model', new URL(`?model=${encodeURIComponent(foreign)}`, URL_).href);
  const { page } = h;
  await page.waitForSelector('[data-testid=link-model]', { timeout: 30 * S });
  const question = await page.textContent('[data-testid=link-model]');
  check('4. ?model= on another origin asks first, naming the host and that the size is unknown',
    /elsewhere\.gguf/.test(question) && /from localhost:9/.test(question) && /size unknown/.test(question), question);
  await sleep(2000);
  const models = h.requests.filter((u) => new URL(u).pathname.endsWith('.gguf'));
  check('4. nothing downloads before the person answers', models.length === 0 && h.workers === 0, J(models));
  const since = await mark(page);
  await page.click('[data-testid=link-model-default]');
  const snap = await settle(page, since, LOAD_AND_RUN_MS);
  check('4. "use the page\'s model" loads the page\'s own', snap.state === 'done'
    && (await page.getAttribute('[data-testid=model-info]', 'data-host')) === '', brief(snap));
  noErrors(h);
  await h.context.close();
}

// 5. Imported files whose continuation or faithfulness report disagree with their tokens.
async function badImports() {
  const h = await openPage('safety-import', '', { timeout: 30 * S });
  const { page } = h;
  let snap = await settle(page, 0, LOAD_AND_RUN_MS);
  const token = (id, text) => ({ id, text, byte_len: text.length, special: false });
  const result = {
    tokens: [token(1, 'A'), token(2, ' b')], target: { id: 3, text: ' c', prob: 0.5 }, foil: null, target_kind: 'prob',
    value: 0.5, top_k: [{ id: 3, text: ' c', prob: 0.5 }], method: 'saliency', params: {}, signed: false, scores: [0.1, 0.2],
    completeness_error: null, path_gradients: null, faithfulness: null,
    continuation: { tokens: [token(1, 'A'), token(2, ' b'), token(3, ' c')], output_start: 2,
                    rows: [{ target: { id: 3, text: ' c', prob: 0.5 }, scores: [0.1, 0.2] }] },
  };
  const saved = (r) => JSON.stringify({ salient: '0.1.0', model: { name: 'm', sha256: '', bytes: 0, url: null }, settings: {}, result: r });
  const files = {
    good: saved(result),
    'output-start': saved({ ...result, continuation: { ...result.continuation, output_start: 1 } }),
    rows: saved({ ...result, continuation: { ...result.continuation, rows: [{ ...result.continuation.rows[0], scores: [0.1] }] } }),
    faithfulness: saved({ ...result, faithfulness: { deletion_curve: [[0, 0.5], [1, 7]], comprehensiveness: 0, sufficiency: 0,
                                                     random_comprehensiveness: 0, random_sufficiency: 0 } }),
  };
  for (const [name, text] of Object.entries(files)) {
    const path = join(OUT, `safety-import-${name}.json`);
    writeFileSync(path, text);
    await page.setInputFiles('[data-testid=import-json]', path);
    await sleep(500);
    const error = await page.$eval('[data-testid=link-error]', (e) => e.textContent).catch(() => '');
    const shown = await page.$$eval('[data-testid=snapshot]', (e) => e.map((x) => x.getAttribute('data-source')));
    if (name === 'good') {
      check('5. a consistent file loads and shows', error === '' && shown.includes(`safety-import-${name}.json`), J({ error, shown }));
      if ((await page.$$('[data-testid=matrix-row]')).length) await page.click('[data-testid=matrix-row]');
    } else {
      check(`5. a file whose ${name} disagrees with its tokens is refused with a message`,
        /cannot be loaded: its result/.test(error), error);
    }
  }
  await stillWorks(h, '5');
  noErrors(h);
  await h.context.close();
}

// 6. A doctored snapshot: real tokens, scores rewritten with a huge max. Recomputed, it differs.
async function doctoredSnapshot() {
  const first = await openPage('safety-doctored-source', '', { timeout: 30 * S });
  await settle(first.page, 0, LOAD_AND_RUN_MS);
  await first.page.click('[data-testid=share]');
  await first.page.waitForFunction(() => document.querySelector('[data-testid=share-link]').value.includes('#s=v1.'), null, { timeout: 5 * S });
  const link = await first.page.inputValue('[data-testid=share-link]');
  await first.context.close();
  const state = decode(link.split('#s=')[1]);
  const honest = await openLink('safety-honest', linkTo(state));
  await honest.page.waitForSelector('[data-testid=snapshot]:not([data-state=shown])', { timeout: LOAD_AND_RUN_MS });
  const verdict = await honest.page.getAttribute('[data-testid=snapshot]', 'data-state');
  check('6. an honest snapshot is recomputed as the same', verdict === 'same', verdict);
  await honest.context.close();
  state.snapshot.scores = { max: 1e6, q: state.snapshot.scores.q.map(() => 0) };
  const h = await openLink('safety-doctored', linkTo(state));
  await h.page.waitForSelector('[data-testid=snapshot]:not([data-state=shown])', { timeout: LOAD_AND_RUN_MS });
  const doctored = await h.page.getAttribute('[data-testid=snapshot]', 'data-state');
  check('6. a doctored snapshot (one step larger than the real scores) is recomputed as different', doctored === 'differs',
    `${doctored}: ${await h.page.textContent('[data-testid=snapshot]')}`);
  noErrors(h);
  await h.context.close();
  // A snapshot-only embed says what it claims and that it was not recomputed.
  const e = await openLink('safety-embed-claim', linkTo(state, 'embed.html'));
  await e.page.waitForSelector('[data-testid=snapshot]', { timeout: 30 * S });
  const claim = await e.page.textContent('[data-testid=snapshot]');
  check('6. a snapshot embed names its method and model and says it was not recomputed',
    /not recomputed here: Gradient saliency/.test(claim) && claim.includes(`${MODEL_FILE} (sha256 ${MODEL_SHA256.slice(0, 12)}…)`), claim);
  noErrors(e);
  await e.context.close();
}

// 7. CSV: token texts that a spreadsheet would run as formulas, and negative scores.
async function csvFormulas() {
  const texts = ['=HYPERLINK("http://x")', '+1', '-2', '@SUM(A1)', 'plain'];
  const snapshot = snapshotOf(texts, { method: 'grad_x_input', signed: true, scores: [32767, -16384, 0, 8000, -32767] });
  const h = await openLink('safety-csv', linkTo({ model: defaultModel, settings: { text: 'x' }, snapshot }), {
    allowConsole: [/Failed to load resource/, /ERR_FAILED/],
    setup: (context) => context.route('**/*.gguf', (r) => r.abort()),
  });
  const { page } = h;
  // The snapshot's tokens are not the text's ('x'), so none is drawn on the editor: the export
  // still writes the snapshot.
  await page.waitForSelector('[data-testid=snapshot]', { timeout: 30 * S });
  const [download] = await Promise.all([page.waitForEvent('download', { timeout: 10 * S }), page.click('[data-testid=export-csv]')]);
  const path = join(OUT, 'safety.csv');
  await download.saveAs(path);
  const rows = readFileSync(path, 'utf8').trim().split('\n').slice(1);
  const cells = rows.map((r) => r.match(/^(\d+),(\d+),"((?:[^"]|"")*)",([^,]+),/));
  check('7. CSV text cells that start like a formula are written as text',
    cells.every((c) => c) && cells.slice(0, 4).every((c) => c[3].startsWith("'")) && cells[4][3] === 'plain', J(rows));
  check('7. negative scores stay numbers', Number(cells[1][4]) < 0 && Number(cells[4][4]) === -0.5, J(cells.map((c) => c && c[4])));
  noErrors(h);
  await h.context.close();
}

// 8. A model whose server announces more bytes than can load: refused before anything is stored,
// and the transfer aborted.
async function tooLargeModel() {
  let closedEarly = false, served = 0;
  const server = createServer((req, res) => {
    res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': String(5e9),
                         'Access-Control-Allow-Origin': '*', 'Cross-Origin-Resource-Policy': 'cross-origin' });
    const timer = setInterval(() => { res.write(Buffer.alloc(1 << 16)); served += 1 << 16; }, 50);
    res.on('close', () => { clearInterval(timer); closedEarly = served < 5e9; });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  try {
    const big = `http://localhost:${server.address().port}/big.gguf`;
    const h = await openLink('safety-big', new URL(`?model=${encodeURIComponent(big)}`, URL_).href,
      { allowConsole: [/Failed to load resource/, /ERR_/] });
    const { page } = h;
    await page.waitForSelector('[data-testid=link-model-download]', { timeout: 30 * S });
    const since = await mark(page);
    await page.click('[data-testid=link-model-download]');
    const snap = await settle(page, since, 60 * S);
    check('8. a model announced at 5 GB is refused with a message', /This model file is 5\.0 GB/.test(snap.message), brief(snap));
    await sleep(1500);
    check('8. the transfer was aborted', closedEarly, `served ${served} bytes`);
    const cached = await page.evaluate(async () => (await (await caches.open('salient-models-v1')).keys()).map((r) => r.url));
    check('8. nothing was stored in the model cache', !cached.some((u) => /big\.gguf/.test(u)), J(cached));
    noErrors(h);
    await h.context.close();
  } finally {
    server.close();
  }
}

// 9. A text longer than a link can carry: kept in the browser, restored on reload, and said.
async function longText() {
  const h = await openPage('safety-long-text', '', { timeout: 30 * S });
  const { page } = h;
  await settle(page, 0, LOAD_AND_RUN_MS);
  // xorshift32: text that deflate cannot shrink much.
  let x = 2463534242;
  const random = () => { x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; return x; };
  const text = Array.from({ length: 420000 }, () => String.fromCharCode(33 + random() % 90)).join('');
  await page.fill('[data-testid=editor]', text);
  const unlinked = await page.waitForSelector('[data-testid=unlinked]', { timeout: 20 * S });
  check('9. the page says the text is too long for a link', /too long for a link/.test(await unlinked.textContent()));
  check('9. the address holds no link then', !(await page.evaluate(() => location.hash)).includes('s='));
  await page.reload();
  await page.waitForSelector('[data-testid=editor]', { timeout: 30 * S });
  const restored = await page.inputValue('[data-testid=editor]');
  check('9. on reload the text comes back, with no link error', restored === text && (await page.$$('[data-testid=link-error]')).length === 0,
    `${restored.length} of ${text.length} characters`);
  await stillWorks(h, '9');
  noErrors(h);
  await h.context.close();
}

// 10. Framing: the full page in another origin's frame is refused (by header, and by the page
// itself where no header is sent); the embed view is framed; an old ?embed address moves.
async function framing() {
  const page_ = new URL('', URL_).href, embed = new URL('embed.html', URL_).href;
  const host = await hostPage(`<!doctype html><meta charset="utf-8"><title>host</title>
      <iframe id="full" src="${page_}" width="600" height="300"></iframe>
      <iframe id="embed" src="${embed}#s=${encode({ model: defaultModel, settings: { text: 'Hi' }, snapshot: snapshotOf(['Hi', ' there']) })}" width="600" height="300"></iframe>`, 'localhost');
  try {
    const hostUrl = host.url;
    const h = await openLink('safety-frame', hostUrl, { allowConsole: [/frame-ancestors/, /Refused to display/, /X-Frame-Options/] });
    const { page } = h;
    await page.frameLocator('#embed').locator('[data-testid=token]').first().waitFor({ timeout: 30 * S });
    check('10. the embed view renders inside another origin\'s frame', (await page.frameLocator('#embed').locator('[data-testid=token]').count()) === 2);
    await sleep(2000);
    const full = page.frames().find((f) => f.url().startsWith(page_) && !f.url().includes('embed'));
    const fullTokens = full ? await full.$$('[data-testid=editor]').then((e) => e.length).catch(() => 0) : 0;
    check('10. the full page does not run inside another origin\'s frame (frame-ancestors)', fullTokens === 0, full ? full.url() : 'no frame');
    await h.context.close();
    // Where the host sends no header (GitHub Pages), the page refuses by itself.
    const bare = await openLink('safety-frame-bare', hostUrl, {
      setup: (context) => context.route(page_, async (route) => {
        const response = await route.fetch();
        const headers = { ...response.headers() };
        delete headers['content-security-policy'];
        delete headers['x-frame-options'];
        await route.fulfill({ response, headers });
      }),
    });
    const framed = bare.page.frameLocator('#full').locator('[data-testid=framed]');
    await framed.waitFor({ timeout: 30 * S });
    check('10. without the header, the full page refuses to start in another origin\'s frame',
      (await bare.page.frameLocator('#full').locator('[data-testid=editor]').count()) === 0
        && /does not run inside another site's frame/.test(await framed.textContent()));
    await shot(bare.page, 'safety-framed.png');
    await bare.context.close();
  } finally {
    host.close();
  }
  const moved = await openLink('safety-old-embed', new URL(`?embed#s=${encode({ model: defaultModel, settings: { text: 'Hi' }, snapshot: snapshotOf(['Hi', ' there']) })}`, URL_).href);
  await moved.page.waitForSelector('[data-testid=embed-view] [data-testid=token]', { timeout: 30 * S });
  check('10. an old ?embed address opens the embed view at embed.html', new URL(moved.page.url()).pathname.endsWith('/embed.html')
    && (await moved.page.$$('[data-testid=token]')).length === 2, moved.page.url());
  noErrors(moved);
  await moved.context.close();
}

// A bug anyway: a panic on the page shows a notice and a reset link; one in the worker (on its
// own thread or in its pool) restarts it with the model.
async function panics() {
  const h = await openPage('safety-panic-page', '', { timeout: 30 * S, allowConsole: [/test panic/, /unreachable/, /RuntimeError/] });
  const { page } = h;
  await settle(page, 0, LOAD_AND_RUN_MS);
  await page.fill('[data-testid=editor]', 'Text typed before the bug');
  await sleep(800);
  await page.evaluate(() => { try { self.salientTestPanic('here'); } catch (e) { /* the abort */ } });
  const notice = await page.waitForSelector('[data-testid=crash]', { timeout: 10 * S });
  check('a panic on the page shows a notice with the reason', /Salient hit a bug and stopped\..*a test panic on the page's thread/s.test(await notice.textContent()),
    await notice.textContent());
  await shot(page, 'safety-panic-page.png');
  await page.click('[data-testid=crash-reset]');
  await page.waitForSelector('[data-testid=editor]', { timeout: 30 * S });
  check('the reset link opens the page with the text kept', (await page.inputValue('[data-testid=editor]')) === 'Text typed before the bug');
  await h.context.close();

  // The single-threaded worker: the page on a host without COOP/COEP.
  const plain = spawn('python3', [join(ROOT, 'scripts/serve.py'), '--dir', DIST, '--not-isolated', '0'], { stdio: ['ignore', 'pipe', 'ignore'] });
  const plainUrl = await new Promise((ok) => plain.stdout.on('data', (d) => { const m = /^serving (http\S+)$/m.exec(d.toString()); if (m) ok(m[1]); }));
  try {
    for (const [build, url] of [['single-threaded', plainUrl], ['multi-threaded', URL_]]) {
      await workerPanic(build, url);
    }
  } finally {
    plain.kill();
  }
}

async function workerPanic(build, url) {
  {
    const w = await openPage(`safety-panic-worker-${build}`, url, { timeout: 30 * S, allowConsole: [/test panic/, /unreachable/, /RuntimeError/, /Uncaught/] });
    const { page: p } = w;
    await settle(p, 0, LOAD_AND_RUN_MS);
    const threads = Number(await p.getAttribute('[data-testid=timings]', 'data-threads'));
    if (build === 'multi-threaded' && threads < 2) { skip('a panic in the multi-threaded worker', `${threads} thread here`); await w.context.close(); return; }
    const worker = p.workers().find((x) => /worker\.js(\?|$)/.test(x.url()));
    const since = await mark(p);
    worker.evaluate(() => self.salientTestPanic('pool')).catch(() => {});
    const snap = await settle(p, since, LOAD_AND_RUN_MS);
    const texts = await p.evaluate(() => window.__salient.texts.map((t) => t.text));
    check(`a panic in the ${build} worker's pool is reported and the worker restarts with the model`,
      texts.some((t) => /The worker stopped \(it hit a bug: a test panic in the engine's pool/.test(t))
        && /was restarted with the model/.test(snap.message), J(texts.slice(-4)));
    await stillWorks(w, `after a ${build} worker panic`);
    await w.context.close();
  }
}

try {
  for (const [name, fn] of [['1 multi-byte hash', multiByteHash], ['2 empty continuation', emptyContinuation],
    ['3 huge compare list', hugeCompareList], ['3 largest matrix', largestMatrix], ['4 query model', queryModel], ['5 bad imports', badImports],
    ['6 doctored snapshot', doctoredSnapshot], ['7 csv formulas', csvFormulas], ['8 too large model', tooLargeModel],
    ['9 long text', longText], ['10 framing', framing], ['panics', panics]]) {
    if (process.env.ONLY && !name.startsWith(process.env.ONLY)) continue;
    info(`--- ${name}`);
    await group(name, null, fn);
  }
} finally {
  await close();
}
finish();

#!/usr/bin/env node
// Browser end-to-end tests of share links, embeds, exports and never losing work, in headless
// Chromium: a share link opened in a fresh page gives the same result; a snapshot renders with the
// model blocked; the embed renders inside an iframe on another origin; every export downloads and
// parses, and the JSON loads back; corrupt and hostile links; a link's other model asks first; a
// reload keeps the edited text.
//
//   node tests/e2e/share.mjs URL [DIST_DIR]
//
// The tests also write links themselves (v1 = base64url(raw deflate(JSON)), as src/share.rs), so
// the page is checked against the format, not only against itself. Prints `ok  name` / `FAIL name
// details` per check and `N passed, M failed`; exits 1 on any failure. Artifacts go to $TEST_OUT
// (default <repo>/test-out): share-*.png, export-*.{json,csv,html,svg,png}, embed-host.html,
// fail-*.png, e2e-share-console.log.
import { ROOT, URL_, OUT, S, createSuite, hostPage, mark, settle, snapshot, MODEL_BYTES, MODEL_URL, MODEL_SHA256 } from './lib.mjs';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { deflateRawSync, inflateRawSync } from 'node:zlib';
import { join } from 'node:path';

const LOAD_AND_RUN_MS = 150 * S;
const RUN_MS = 90 * S;

const EXAMPLE = 'The Eiffel Tower is located in the city of';
const EDITED = 'The capital of France is';
const HOSTILE = '<script>alert(1)</script><b>x</b>';
const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

mkdirSync(OUT, { recursive: true });
const { note, check, info, shot, group, noErrors, openPage, browserVersion, close, finish } =
  createSuite({ url: URL_, out: OUT, log: join(OUT, 'e2e-share-console.log'), name: 'share e2e', watchdogS: 1800 });
const J = (v) => JSON.stringify(v);

// ---------------------------------------------------------------------------------------------
// Links, written and read here

const encode = (state) => 'v1.' + deflateRawSync(Buffer.from(JSON.stringify(state))).toString('base64url');
const decode = (payload) => JSON.parse(inflateRawSync(Buffer.from(payload.replace(/^v1\./, ''), 'base64url')).toString());
const payloadOf = (link) => /[#&](?:s|embed)=([^&"]+)/.exec(link)?.[1] ?? '';
const linkTo = (state, query = '') => new URL(`${query}#s=${encode(state)}`, URL_).href;
const defaultModel = { url: { url: MODEL_URL } };

// A snapshot as the page writes one (src/shared_state.rs), for texts the model never saw.
function craftedSnapshot(texts, target) {
  const q = texts.map((_, i) => Math.round(32767 * (i + 1) / texts.length));
  return {
    tokens: { ids: texts.map((_, i) => 1000 + i), texts }, target, kind: 'prob', method: 'saliency', signed: false,
    value: target.prob, top_k: [target], scores: { max: 0.5, q },
  };
}

// ---------------------------------------------------------------------------------------------
// Reading the page

const num = (v) => (v === null || v === undefined || v === '' ? NaN : Number(v));
const ids = (snap) => snap.tokens.map((t) => Number(t.id));
const scores = (snap) => snap.tokens.map((t) => num(t.score));
const brief = (snap) => `state=${snap.state} message=${J(snap.message)}`;
const attr = (page, testid, name) => page.getAttribute(`[data-testid=${testid}]`, name);

// Largest |a − b| relative to max |a| (Infinity when the lengths differ).
function relDiff(a, b) {
  if (a.length !== b.length || !a.length) return Infinity;
  const max = Math.max(...a.map(Math.abs)) || 1;
  return Math.max(...a.map((x, i) => Math.abs(x - b[i]))) / max;
}

// Acts, then waits for the page to settle on the result.
async function after(page, act, timeout = RUN_MS) {
  const since = await mark(page);
  await act();
  return settle(page, since, timeout);
}

// A fresh page at `link`, with optional request routing set up before the page loads.
async function openLink(scope, link, { route, allowConsole } = {}) {
  const h = await openPage(scope, 'about:blank', { allowConsole, timeout: 30 * S });
  h.requests = [];
  h.page.on('request', (r) => h.requests.push(r.url()));
  h.dialogs = [];
  h.page.on('dialog', (d) => { h.dialogs.push(d.message()); d.dismiss().catch(() => {}); });
  if (route) await h.context.route(route.pattern, route.handler);
  note(scope, `goto ${link.slice(0, 160)}…`);
  await h.page.goto(link, { timeout: 30 * S });
  return h;
}

// RFC 4180 rows (quoted fields may hold commas, quotes and newlines).
function csvRows(text) {
  const rows = [];
  let row = [], field = '', quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') { field += '"'; i++; } else if (c === '"') quoted = false; else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') { row.push(field); field = ''; }
    else if (c === '\n') { row.push(field); rows.push(row); row = []; field = ''; }
    else field += c;
  }
  if (field || row.length) { row.push(field); rows.push(row); }
  return rows;
}

// ---------------------------------------------------------------------------------------------
// The main page: an edited state, its share links, its exports, the JSON loaded back

async function mainPageTests() {
  const h = await openPage('share', '', { timeout: 30 * S });
  const { page } = h;
  let snap = await settle(page, 0, LOAD_AND_RUN_MS);
  if (!check('the page loads and explains the example', snap.state === 'done', brief(snap))) { noErrors(h); return null; }

  // A state that is not the default: another text and a signed method.
  await page.fill('[data-testid=editor]', EDITED);
  snap = await settle(page, await mark(page), RUN_MS);
  snap = await after(page, () => page.selectOption('[data-testid=method]', 'grad_x_input'));
  check('edited text and method (grad_x_input) computed', snap.state === 'done' && snap.tokens.length > 0, brief(snap));
  const original = { ids: ids(snap), scores: scores(snap), target: snap.target, n: snap.tokens.length };
  info(`original: ${original.n} tokens, target ${J(original.target)}`);

  const links = {};
  await group('share button', h, async () => {
    await page.click('[data-testid=share]');
    await page.waitForFunction(() => document.querySelector('[data-testid=share-link]').value.includes('#s=v1.'), null, { timeout: 5 * S });
    links.snapshot = await page.inputValue('[data-testid=share-link]');
    check('share fills the link box with the page address and #s=v1.…', links.snapshot.startsWith(new URL(URL_).origin)
      && /#s=v1\.[A-Za-z0-9_-]+$/.test(links.snapshot), links.snapshot.slice(0, 120));
    const state = decode(payloadOf(links.snapshot));
    check('the link holds the text, the method and the model', state.settings.text === EDITED
      && state.settings.method === 'grad_x_input' && state.model.url?.url === MODEL_URL && /^[0-9a-f]{64}$/.test(state.model.url?.sha256),
      J({ text: state.settings.text, method: state.settings.method, model: state.model }));
    check('with the checkbox on, the link holds a snapshot of every token', state.snapshot?.tokens.ids.length === original.n
      && J(state.snapshot.tokens.ids) === J(original.ids), J(state.snapshot?.tokens.ids));
    await page.waitForFunction(() => document.querySelector('[data-testid=share-note]').textContent.trim() !== '', null, { timeout: 5 * S });
    info(`clipboard: ${await page.textContent('[data-testid=share-note]')}`);
    await page.uncheck('[data-testid=share-snapshot]');
    await page.click('[data-testid=share]');
    await page.waitForFunction((old) => document.querySelector('[data-testid=share-link]').value !== old, links.snapshot, { timeout: 5 * S });
    links.plain = await page.inputValue('[data-testid=share-link]');
    check('with the checkbox off, the link holds no snapshot', !decode(payloadOf(links.plain)).snapshot);
    check('the page address follows the state (#s= with the edited text)',
      decode(payloadOf(await page.evaluate(() => location.hash))).settings.text === EDITED);
  });

  await group('embed snippet', h, async () => {
    await page.check('[data-testid=share-snapshot]');   // the embed shows the result without a model
    await page.click('[data-testid=embed]');
    const snippet = await page.inputValue('[data-testid=embed-snippet]');
    links.embedSnippet = snippet;
    check('the embed snippet is an iframe of embed.html#s=… with a size (a fallback without script), and the script that fits its height',
      /^<iframe src="[^"]+\/embed\.html#s=v1\.[^"]+" width="100%" height="\d+"[^>]*><\/iframe>\n<script>[^<]+<\/script>$/.test(snippet), snippet.slice(0, 160));
    await page.selectOption('[data-testid=embed-height]', 'fixed');
    await page.selectOption('[data-testid=embed-width]', 'fixed');
    await page.selectOption('[data-testid=embed-theme]', 'dark');
    await page.click('[data-testid=embed]');
    const fixed = await page.inputValue('[data-testid=embed-snippet]');
    check('a fixed, dark snippet: one iframe of a set size with ?theme=dark',
      /^<iframe src="[^"]+\/embed\.html\?theme=dark#s=v1\.[^"]+" width="\d+" height="\d+"[^>]*><\/iframe>$/.test(fixed), fixed.slice(0, 160));
  });

  await group('exports', h, () => exportTests(h, original));
  await shot(page, 'share-main.png');
  noErrors(h);
  await h.context.close();
  return { original, links };
}

async function download(page, testid, name) {
  const [file] = await Promise.all([page.waitForEvent('download', { timeout: 20 * S }), page.click(`[data-testid=${testid}]`)]);
  const path = join(OUT, name);
  await file.saveAs(path);
  return { path, name: file.suggestedFilename() };
}

async function exportTests(h, original) {
  const { page } = h;
  await page.waitForFunction(() => !document.querySelector('[data-testid=faithfulness][data-state=measuring]'), null,
    { timeout: RUN_MS, polling: 200 });
  const json = await download(page, 'export-json', 'export.json');
  const saved = JSON.parse(readFileSync(json.path, 'utf8'));
  check('JSON export: tokens, scores, target, method, params, model sha256, version',
    saved.result.tokens.length === original.n && saved.result.scores.length === original.n
      && saved.result.target.id === Number(original.target.id) && saved.result.method === 'grad_x_input'
      && saved.result.params && /^[0-9a-f]{64}$/.test(saved.model.sha256) && saved.salient && saved.settings.text === EDITED
      && relDiff(original.scores, saved.result.scores) <= 1e-6,
    J({ name: json.name, n: saved.result.tokens.length, model: saved.model, version: saved.salient }));
  check('JSON export includes the faithfulness report when it was measured', saved.result.faithfulness?.deletion_curve?.length > 0,
    J(saved.result.faithfulness)?.slice(0, 100));

  const csv = await download(page, 'export-csv', 'export.csv');
  const rows = csvRows(readFileSync(csv.path, 'utf8'));
  check('CSV export: a header and one row per token (index, id, text, score, normalised)',
    J(rows[0]) === J(['index', 'token_id', 'token_text', 'score', 'normalised']) && rows.length === original.n + 1
      && rows.slice(1).every((r, i) => Number(r[0]) === i && Number(r[1]) === original.ids[i] && Number.isFinite(Number(r[4]))),
    `${rows.length} rows: ${J(rows.slice(0, 3))}`);

  const html = readFileSync((await download(page, 'export-html', 'export.html')).path, 'utf8');
  check('HTML export: no script, one coloured span per token, a legend', !/<script/i.test(html)
    && (html.match(/<span style="background:hsl/g) || []).length === original.n && /linear-gradient/.test(html), html.slice(0, 160));

  const svg = readFileSync((await download(page, 'export-svg', 'export.svg')).path, 'utf8');
  const parsed = await page.evaluate((text) => {
    const doc = new DOMParser().parseFromString(text, 'image/svg+xml');
    return { error: doc.querySelector('parsererror')?.textContent || null, root: doc.documentElement.nodeName,
             rects: doc.querySelectorAll('g > rect').length, script: doc.querySelectorAll('script').length };
  }, svg);
  check('SVG export parses as SVG, a rect per token piece, no script', !parsed.error && parsed.root === 'svg'
    && parsed.rects >= original.n && parsed.script === 0, J(parsed));

  const png = readFileSync((await download(page, 'export-png', 'export.png')).path);
  check('PNG export has the PNG signature', PNG_SIGNATURE.every((b, i) => png[i] === b) && png.length > 1000, `${png.length} bytes`);

  // Loaded back: a changed text is replaced by the file's, and its result shows as a snapshot.
  await page.fill('[data-testid=editor]', 'Something else entirely');
  await settle(page, await mark(page), RUN_MS);
  await page.setInputFiles('[data-testid=import-json]', json.path);
  await page.waitForSelector('[data-testid=snapshot][data-source="export.json"]', { timeout: 10 * S });
  const snap = await snapshot(page);
  check('the JSON export loads back: its text, its tokens and scores, marked as a snapshot',
    snap.editor === EDITED && J(ids(snap)) === J(original.ids) && relDiff(original.scores, scores(snap)) <= 1e-6
      && Number(snap.target?.id) === Number(original.target.id),
    J({ editor: snap.editor, ids: ids(snap), target: snap.target }));
  // Dropped on the page, an export loads the same way (and does not reach the model panel's drop).
  const modelUrl = await attr(page, 'model-info', 'data-url');
  await page.evaluate((text) => {
    const data = new DataTransfer();
    data.items.add(new File([text], 'dropped.json', { type: 'application/json' }));
    document.querySelector('[data-testid=heatmap]').dispatchEvent(new DragEvent('drop', { dataTransfer: data, bubbles: true, cancelable: true }));
  }, readFileSync(json.path, 'utf8'));
  await page.waitForSelector('[data-testid=snapshot][data-source="dropped.json"]', { timeout: 10 * S });
  await sleep(500);
  check('a dropped JSON export loads as a snapshot and is not loaded as a model',
    (await attr(page, 'snapshot', 'data-tokens')) === String(original.n) && (await attr(page, 'model-info', 'data-url')) === modelUrl
      && (await attr(page, 'status', 'data-state')) !== 'loading', await page.textContent('[data-testid=status]'));
  // And a file that is not an export gets a message, not a crash.
  const bad = join(OUT, 'not-an-export.json');
  writeFileSync(bad, '{"hello": "world"}');
  await page.setInputFiles('[data-testid=import-json]', bad);
  await page.waitForSelector('[data-testid=link-error]', { timeout: 10 * S });
  check('a JSON file that is not an export is refused with a message',
    /cannot be loaded: it is not a result exported by Salient/.test(await page.textContent('[data-testid=link-error]')));
}

// ---------------------------------------------------------------------------------------------
// Opening links

async function roundTripTests({ original, links }) {
  // With a snapshot: the map at once, then the recomputation, compared.
  const h = await openLink('share-open-snapshot', links.snapshot);
  let page = h.page;
  await page.waitForSelector('[data-testid=snapshot]', { timeout: 30 * S });
  check('a snapshot link shows the snapshot before the model has loaded',
    Number(await attr(page, 'snapshot', 'data-tokens')) === original.n
      && (await page.$$('[data-testid=token]')).length === original.n, await page.textContent('[data-testid=snapshot]'));
  let snap = await settle(page, 0, LOAD_AND_RUN_MS);
  await page.waitForSelector('[data-testid=snapshot]:not([data-state=shown])', { timeout: 10 * S }).catch(() => {});
  const verdict = { state: await attr(page, 'snapshot', 'data-state'), diff: num(await attr(page, 'snapshot', 'data-max-diff')),
                    tolerance: num(await attr(page, 'snapshot', 'data-tolerance')), text: await page.textContent('[data-testid=snapshot]') };
  check('after recomputing, the page reports the snapshot the same within its quantisation step',
    verdict.state === 'same' && verdict.diff <= verdict.tolerance, J(verdict));
  check('the recomputed result equals the sharer\'s (tokens, target, scores within 1e-4 of max |score|)',
    snap.state === 'done' && J(ids(snap)) === J(original.ids) && snap.target?.id === original.target.id
      && relDiff(original.scores, scores(snap)) <= 1e-4, `${brief(snap)} rel diff ${relDiff(original.scores, scores(snap))}`);
  noErrors(h);
  await h.context.close();

  // Without a snapshot: the settings alone give the same result.
  const p = await openLink('share-open-plain', links.plain);
  page = p.page;
  snap = await settle(page, 0, LOAD_AND_RUN_MS);
  check('a link without snapshot restores the text and method and computes the same result',
    snap.editor === EDITED && (await page.inputValue('[data-testid=method]')) === 'grad_x_input'
      && J(ids(snap)) === J(original.ids) && snap.target?.id === original.target.id && relDiff(original.scores, scores(snap)) <= 1e-4,
    `${brief(snap)} editor=${J(snap.editor)} rel diff ${relDiff(original.scores, scores(snap))}`);
  check('no snapshot note without a snapshot', (await page.$$('[data-testid=snapshot]')).length === 0);
  noErrors(p);
  await p.context.close();
}

async function blockedModelTests({ original, links }) {
  const blocked = [];
  const h = await openLink('share-no-model', links.snapshot, {
    route: { pattern: '**/*.gguf', handler: (r) => { blocked.push(r.request().url()); return r.abort(); } },
    allowConsole: [/Failed to load resource/, /ERR_FAILED/],
  });
  const { page } = h;
  await page.waitForSelector('[data-testid=snapshot]', { timeout: 30 * S });
  const tokens = await page.$$('[data-testid=token]');
  check('with the model blocked, the snapshot renders: the right token count and the snapshot mark',
    tokens.length === original.n && Number(await attr(page, 'snapshot', 'data-tokens')) === original.n,
    `${tokens.length} tokens`);
  const snap = await settle(page, 0, 60 * S);
  check('the blocked model fails to load and the page says so', snap.state === 'error' && blocked.length > 0, brief(snap));
  check('the failed download keeps the text and the snapshot', snap.editor === EDITED && snap.tokens.length === original.n
    && (await page.$$('[data-testid=snapshot]')).length === 1, J(snap.editor));
  await shot(page, 'share-snapshot-no-model.png');
  noErrors(h);
  await h.context.close();
}

// The embed inside an iframe of a page on another origin (a small server here).
async function embedTests({ original, links }) {
  const html = `<!doctype html><meta charset="utf-8"><title>embed host</title><h1>A blog post</h1>\n${links.embedSnippet}\n`;
  writeFileSync(join(OUT, 'embed-host.html'), html);
  const host = await hostPage(html);
  try {
    const hostUrl = host.url;
    const h = await openLink('share-embed', hostUrl);
    const { page } = h;
    const frame = page.frameLocator('iframe');
    await frame.locator('[data-testid=token]').first().waitFor({ timeout: 60 * S });
    const n = await frame.locator('[data-testid=token]').count();
    check('the embed renders the highlighted text inside an iframe on another origin', n === original.n, `${n} tokens`);
    await page.waitForFunction(() => /px$/.test(document.querySelector('iframe').style.height), null, { timeout: 10 * S }).catch(() => {});
    const heights = { iframe: await page.$eval('iframe', (f) => f.getBoundingClientRect().height),
      content: await frame.locator('body').evaluate((b) => b.getBoundingClientRect().height) };
    check('the iframe takes its content\'s height (the embed posts it, the snippet\'s script applies it)',
      Math.abs(heights.iframe - Math.ceil(heights.content)) <= 1 && heights.iframe !== 300, J(heights));
    check('the embed shows the target and the legend', (await frame.locator('[data-testid=legend]').count()) === 1
      && Number(await frame.locator('[data-testid=embed-target]').getAttribute('data-token-id')) === Number(original.target.id));
    check('the embed is minimal: no editor, no model panel, no share panel',
      (await frame.locator('[data-testid=editor]').count()) === 0 && (await frame.locator('[data-testid=model-panel]').count()) === 0
        && (await frame.locator('[data-testid=share-panel]').count()) === 0);
    const open = await frame.locator('[data-testid=open-in-salient]').getAttribute('href');
    const state = decode(payloadOf(open));
    check('"open in Salient" links to the full page with the same state',
      open.startsWith(new URL(URL_).href) && !/embed/.test(open.split('#')[0]) && state.settings.text === EDITED
        && J(state.snapshot?.tokens.ids) === J(original.ids), open.slice(0, 120));
    await sleep(1500);
    check('an embed of a snapshot downloads no model', !h.requests.some((u) => /\.gguf/.test(u)), J(h.requests.filter((u) => /\.gguf/.test(u))));
    await shot(page, 'share-embed.png');
    noErrors(h);
    await h.context.close();

    // `#embed=…` is the same as `?embed#s=…`.
    const f = await openLink('share-embed-fragment', new URL(`#embed=${payloadOf(links.embedSnippet)}`, URL_).href);
    await f.page.waitForSelector('[data-testid=embed-view] [data-testid=token]', { timeout: 30 * S });
    check('#embed=… opens the embed view with the snapshot', (await f.page.$$('[data-testid=token]')).length === original.n
      && (await f.page.$$('[data-testid=editor]')).length === 0);
    noErrors(f);
    await f.context.close();

    // Editable: the editor, and the model computes.
    const editable = linkTo(decode(payloadOf(links.plain)), '?embed&editable');
    const e = await openLink('share-embed-editable', editable);
    const snap = await settle(e.page, 0, LOAD_AND_RUN_MS);
    check('an editable embed has the editor with the text and computes the map', snap.state === 'done' && snap.editor === EDITED
      && snap.tokens.length === original.n, brief(snap));
    noErrors(e);
    await e.context.close();
  } finally {
    host.close();
  }
}

async function badLinkTests() {
  const good = encode({ model: defaultModel, settings: { text: 'Never shown' } });
  const cases = [
    ['corrupt', 'v1.AAAA-not-deflate', /This share link cannot be opened: its data is corrupt/],
    ['truncated', good.slice(0, Math.floor(good.length / 2)), /This share link cannot be opened/],
    ['unknown version', 'v7.abc', /format "v7" is unknown/],
    ['not a state', encode({ hello: 'world' }), /does not describe a Salient state/],
  ];
  for (const [name, payload, expected] of cases) {
    const h = await openLink(`share-bad-${name}`, new URL(`#s=${payload}`, URL_).href);
    const { page } = h;
    await page.waitForSelector('[data-testid=link-error]', { timeout: 30 * S });
    const message = await page.textContent('[data-testid=link-error]');
    const editor = await page.inputValue('[data-testid=editor]');
    check(`a ${name} link shows a clear message and the default page`, expected.test(message) && editor === EXAMPLE,
      J({ message, editor }));
    if (name === 'corrupt') {
      const snap = await settle(page, 0, LOAD_AND_RUN_MS);
      check('after a corrupt link the default example still runs', snap.state === 'done' && snap.tokens.length > 0, brief(snap));
      await shot(page, 'share-corrupt-link.png');
    }
    noErrors(h);
    await h.context.close();
  }
}

async function hostileTextTests() {
  const target = { id: 1, text: '<b>t</b>', prob: 0.5 };
  const state = { model: defaultModel, settings: { text: HOSTILE },
                  snapshot: craftedSnapshot(['<script>alert(1)</script>', '<b>x</b>', '<img src=x onerror=alert(2)>'], target) };
  const h = await openLink('share-hostile', linkTo(state));
  const { page } = h;
  await page.waitForSelector('[data-testid=snapshot]', { timeout: 30 * S });
  // The map is drawn on the editor's text: a snapshot's token texts show only where they are that
  // text (the crafted third token is not), and only ever as text.
  const inMap = () => page.evaluate(() => {
    const map = document.querySelector('[data-testid=heatmap]');
    return { elements: map.querySelectorAll('b, img, script').length, text: map.querySelector('[data-testid=editor-map]').textContent,
             tokens: [...map.querySelectorAll('[data-testid=token]')].map((t) => t.textContent) };
  });
  let seen = await inMap();
  check('a snapshot\'s hostile token texts render as text (no <b>, <img> or <script> in the token area)',
    seen.elements === 0 && seen.text.includes('<b>x</b>') && seen.tokens.every((t) => HOSTILE.includes(t)), J(seen));
  const snap = await settle(page, 0, LOAD_AND_RUN_MS);
  seen = await inMap();
  check('the hostile text is restored literally and computed, with no element created from it',
    snap.state === 'done' && snap.editor === HOSTILE && seen.elements === 0 && seen.text.includes('<b>x</b>'), J({ seen, state: snap.state }));
  check('no dialog fired', h.dialogs.length === 0, J(h.dialogs));
  check('no element from the text anywhere on the page', await page.evaluate(() => document.querySelectorAll('main b').length === 0));
  noErrors(h);
  await h.context.close();
}

async function otherModelTests() {
  const other = 'http://127.0.0.1:9/other-model.gguf';
  const h = await openLink('share-other-model', linkTo({
    model: { url: { url: other, sha256: 'ab'.repeat(32), bytes: 123456789 } }, settings: { text: EDITED } }));
  const { page } = h;
  await page.waitForSelector('[data-testid=link-model]', { timeout: 30 * S });
  const question = await page.textContent('[data-testid=link-model]');
  check('a link with another model names it and its size, and asks first', /other-model\.gguf/.test(question)
    && /123\.5 MB/.test(question) && /127\.0\.0\.1:9/.test(question), question);
  await sleep(2000);
  check('nothing downloads before the user answers', !h.requests.some((u) => /\.gguf/.test(u)) && h.workers === 0,
    J({ requests: h.requests.filter((u) => /\.gguf/.test(u)), workers: h.workers }));
  const snap = await after(page, () => page.click('[data-testid=link-model-default]'), LOAD_AND_RUN_MS);
  check('"use the page\'s model" loads it and computes the link\'s text', snap.state === 'done' && snap.editor === EDITED, brief(snap));
  check('the page then says the loaded model is not the link\'s', (await page.$$('[data-testid=link-model-differs]')).length === 1);
  noErrors(h);
  await h.context.close();

  // "Download": the link's model (the same file under another address) loads, and it is the link's.
  const copy = new URL(`${MODEL_URL}?copy=1`, URL_).href;
  const d = await openLink('share-link-model-download', linkTo({
    model: { url: { url: copy, sha256: MODEL_SHA256, bytes: MODEL_BYTES } }, settings: { text: EDITED } }));
  await d.page.waitForSelector('[data-testid=link-model]', { timeout: 30 * S });
  const loaded = await after(d.page, () => d.page.click('[data-testid=link-model-download]'), LOAD_AND_RUN_MS);
  check('"Download" loads the link\'s model and computes the link\'s text', loaded.state === 'done' && loaded.editor === EDITED
    && (await attr(d.page, 'model-info', 'data-url')) === copy && (await d.page.$$('[data-testid=link-model-differs]')).length === 0,
    `${brief(loaded)} url=${await attr(d.page, 'model-info', 'data-url')}`);
  noErrors(d);
  await d.context.close();
}

async function persistenceTests() {
  const h = await openPage('share-persist', '', { timeout: 30 * S });
  const { page } = h;
  await settle(page, 0, LOAD_AND_RUN_MS);
  const text = 'Kept across reloads: 東京 🙂';
  await page.fill('[data-testid=editor]', text);
  await settle(page, await mark(page), RUN_MS);
  const stored = await page.evaluate(() => localStorage.getItem('salient.settings.v1'));
  check('the edited text is saved in localStorage', JSON.parse(stored || '{}').text === text, stored?.slice(0, 100));
  await page.reload();
  await page.waitForSelector('[data-testid=editor]');
  check('a reload keeps the edited text', (await page.inputValue('[data-testid=editor]')) === text);
  // The address without its fragment: localStorage alone restores the text.
  await page.goto(URL_);
  await page.waitForSelector('[data-testid=editor]');
  check('opening the page again (no fragment) restores the text from localStorage', (await page.inputValue('[data-testid=editor]')) === text);
  const snap = await settle(page, 0, LOAD_AND_RUN_MS);
  check('and computes it', snap.state === 'done' && snap.editor === text, brief(snap));
  noErrors(h);
  await h.context.close();
}

// ---------------------------------------------------------------------------------------------

try {
  info(`${await browserVersion()} -> ${URL_}`);
  let shared = null;
  await group('main page', null, async () => { shared = await mainPageTests(); });
  if (shared) {
    await group('round trip', null, () => roundTripTests(shared));
    await group('snapshot without model', null, () => blockedModelTests(shared));
    await group('embed', null, () => embedTests(shared));
  } else {
    check('share links (skipped: the main page did not compute)', false);
  }
  await group('bad links', null, badLinkTests);
  await group('hostile text', null, hostileTextTests);
  await group('other model', null, otherModelTests);
  await group('persistence', null, persistenceTests);
} catch (e) {
  check('share e2e harness', false, e.stack || e.message);
} finally {
  await close();
}
finish();

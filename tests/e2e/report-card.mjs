#!/usr/bin/env node
// Browser end-to-end test of the ground-truth report card (issue 30), in headless Chromium on the
// default model: choose methods and samples, see the estimate, run it, read the table, open an
// item in the editor, cancel a second run.
//
//   node tests/e2e/report-card.mjs URL [DIST_DIR]
//
// Artifacts go to $TEST_OUT (default <repo>/test-out): report-card.png, fail-*.png,
// e2e-report-card-console.log.
import { URL_, OUT, S, createSuite, settle } from './lib.mjs';
import { mkdirSync } from 'node:fs';
import { deflateRawSync, inflateRawSync } from 'node:zlib';
import { join } from 'node:path';

const LOAD_AND_RUN_MS = 150 * S;
const REPORT_MS = 300 * S;
const KEEP = { saliency: 2, attention: 2 };

mkdirSync(OUT, { recursive: true });
const { check, info, shot, group, noErrors, openPage, browserVersion, close, finish } =
  createSuite({ url: URL_, out: OUT, log: join(OUT, 'e2e-report-card-console.log'), name: 'report card e2e', watchdogS: 900 });
const J = (v) => JSON.stringify(v);
const num = (v) => (v === null || v === undefined || v === '' ? NaN : Number(v));

const rows = (page) => page.$$eval('[data-testid=report-row]', (es) => es.map((e) => Object.fromEntries(
  ['method', 'family', 'items', 'hit-rate', 'ci-low', 'ci-high', 'mean-rank', 'evidence-mass', 'target-independent']
    .map((k) => [k, e.getAttribute(`data-${k}`)]))));
const reportState = (page) => page.$eval('[data-testid=report-state]', (e) => e.getAttribute('data-state')).catch(() => null);
const decode = (link) => JSON.parse(inflateRawSync(Buffer.from(/#s=v1\.([^&]+)/.exec(link)[1], 'base64url')).toString());
const encode = (state) => 'v1.' + deflateRawSync(Buffer.from(JSON.stringify(state))).toString('base64url');
const waitState = (page, state, timeout) => page.waitForSelector(`[data-testid=report-state][data-state=${state}]`, { timeout });

async function tests() {
  const h = await openPage('report', '', { timeout: 30 * S });
  const { page } = h;
  await settle(page, 0, LOAD_AND_RUN_MS);
  await page.click('[data-testid=report-panel] > summary');

  await group('choose methods and samples', h, async () => {
    const methods = await page.$$eval('[data-testid=report-method]', (es) => es.map((e) => [e.getAttribute('data-method'), e.checked]));
    check('every method is offered, all chosen by default', methods.length === 10 && methods.every(([, on]) => on), J(methods));
    const samples = Object.fromEntries(await page.$$eval('[data-testid=report-sample]', (es) => es.map((e) => [e.getAttribute('data-method'), Number(e.value)])));
    check('expensive methods take fewer items by default', samples.integrated_gradients < samples.saliency && samples.occlusion < samples.saliency, J(samples));
    const before = num(await page.$eval('[data-testid=report-estimate]', (e) => e.getAttribute('data-ms')));
    check('a time estimate is shown before it starts (from the first run\'s pace)', before > 0, String(before));
    for (const [method] of methods) {
      if (KEEP[method]) await page.fill(`[data-testid=report-sample][data-method=${method}]`, String(KEEP[method])).then(() => page.dispatchEvent(`[data-testid=report-sample][data-method=${method}]`, 'change'));
      else await page.uncheck(`[data-testid=report-method][data-method=${method}]`);
    }
    const after = num(await page.$eval('[data-testid=report-estimate]', (e) => e.getAttribute('data-ms')));
    check('the estimate follows the choice', after > 0 && after < before, `${before} -> ${after}`);
  });

  await group('run it and read the card', h, async () => {
    await page.click('[data-testid=report-run]');
    await waitState(page, 'done', REPORT_MS);
    const r = await rows(page);
    const methods = r.filter((x) => x.method !== 'random'), random = r.filter((x) => x.method === 'random');
    check('one row per method and family, and a random row per family', methods.length === 8 && random.length === 4, J(r.map((x) => `${x.method}/${x.family}`)));
    check('hit rates within their intervals, all in [0, 1]', r.every((x) => {
      const [hit, lo, hi] = [num(x['hit-rate']), num(x['ci-low']), num(x['ci-high'])];
      return lo >= 0 && lo <= hit + 1e-12 && hit <= hi + 1e-12 && hi <= 1;
    }), J(r));
    check('attention is marked target-independent, saliency not', r.filter((x) => x.method === 'attention').every((x) => x['target-independent'] === 'true')
      && r.filter((x) => x.method === 'saliency').every((x) => x['target-independent'] === 'false'), J(r));
    check('each method row has at most the asked items per family', methods.every((x) => num(x.items) <= KEEP[x.method]), J(methods));
    for (const x of methods) info(`${x.method.padEnd(10)} ${x.family.padEnd(16)} n=${x.items} hit ${num(x['hit-rate']).toFixed(2)} [${num(x['ci-low']).toFixed(2)}, ${num(x['ci-high']).toFixed(2)}] rank ${num(x['mean-rank']).toFixed(2)}`);
    await shot(page, 'report-card.png');
  });

  await group('share it by link', h, async () => {
    const before = await rows(page);
    await page.check('[data-testid=share-snapshot]');
    await page.click('[data-testid=share]');
    await page.waitForFunction(() => document.querySelector('[data-testid=share-link]').value.includes('#s=v1.'), null, { timeout: 5 * S });
    const link = await page.inputValue('[data-testid=share-link]');
    const state = decode(link);
    check('the link carries the report card', state.report?.report?.methods?.length === 8, J(Object.keys(state)));
    const opened = await openPage('report-link', new URL(link).hash, { timeout: 30 * S });
    await opened.page.waitForSelector('[data-testid=report-state][data-state=done]', { state: 'attached', timeout: 60 * S });
    check('the linked page shows the same card, not recomputed', J(await rows(opened.page)) === J(before), J(await rows(opened.page)));
    noErrors(opened);
    await opened.context.close();
    // A hostile card: a hit rate of 7 and an unknown method are refused with a note, never drawn.
    state.report.report.methods[0]['hit_rate'] = 7;
    state.report.report.methods[1].method = '<img src=x onerror=alert(1)>';
    const hostile = await openPage('report-hostile', `#s=${encode(state)}`, { timeout: 30 * S });
    await hostile.page.waitForSelector('[data-testid=link-error]', { timeout: 30 * S });
    const note = await hostile.page.textContent('[data-testid=link-error]');
    check('a hostile card is refused with a note, and no row is drawn', /report card cannot be shown/.test(note)
      && (await rows(hostile.page)).length === 0, note);
    noErrors(hostile);
    await hostile.context.close();
  });

  await group('open an item in the editor', h, async () => {
    await page.click('.report-items > summary');
    const item = page.locator('[data-testid=report-item][data-method=saliency]').first();
    const id = await item.getAttribute('data-id');
    const since = await page.evaluate(() => window.__salient.states.length);
    await item.click();
    await settle(page, since, 120 * S);
    const editor = await page.$eval('[data-testid=editor]', (e) => e.value);
    const method = await page.$eval('[data-testid=method]', (e) => e.value);
    const state = await page.$eval('[data-testid=status]', (e) => e.getAttribute('data-state'));
    check(`item ${id} opens in the editor with its method and runs`, editor.length > 10 && method === 'saliency' && state === 'done', J({ editor, method, state }));
    const foil = await page.$('[data-testid=foil]');
    check('its foil is set', !!foil);
  });

  await group('cancel a report card', h, async () => {
    await page.check('[data-testid=report-method][data-method=occlusion]');
    await page.click('[data-testid=report-run]');
    await waitState(page, 'running', 30 * S);
    await page.click('[data-testid=cancel]');
    await waitState(page, 'stopped', 30 * S);
    check('Cancel stops it', (await reportState(page)) === 'stopped');
  });

  noErrors(h);
  await h.context.close();
}

try {
  info(`${await browserVersion()} -> ${URL_}`);
  await group('report card', null, tests);
} catch (e) {
  check('e2e harness', false, e.stack || e.message);
} finally {
  await close();
}
finish();

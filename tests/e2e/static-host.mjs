#!/usr/bin/env node
// Threads on any static host (issue 29): dist/ served by Python's plain http.server (no COOP,
// COEP or any other header of ours, as GitHub Pages would). The first visit runs on one thread
// and installs sw.js; after a reload the page is cross-origin isolated and the worker runs on
// every core. The embed view opened on its own gets the same; framed by another site it stays on
// one thread (that case is the GPU path's).
//
//   node tests/e2e/static-host.mjs URL DIST_DIR      (URL unused: this test serves DIST itself)
import { DIST, OUT, S, createSuite, settle, hostPage } from './lib.mjs';
import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';

const RUN_MS = 150 * S;
mkdirSync(OUT, { recursive: true });
const { check, skip, info, shot, group, noErrors, openPage, browserVersion, close, finish } =
  createSuite({ url: 'http://127.0.0.1/', out: OUT, log: join(OUT, 'e2e-static-host-console.log'), name: 'static host e2e', watchdogS: 600 });
const J = (v) => JSON.stringify(v);

function plainServer() {
  const server = spawn('python3', ['-m', 'http.server', '0', '--bind', '127.0.0.1', '--directory', DIST], { stdio: ['ignore', 'pipe', 'pipe'] });
  const url = new Promise((resolve, reject) => {
    server.stdout.on('data', (d) => { const m = /port (\d+)/.exec(String(d)); if (m) resolve(`http://127.0.0.1:${m[1]}/`); });
    server.on('exit', (code) => reject(new Error(`http.server exited with ${code}`)));
  });
  return { server, url };
}

const threadsOf = async (page) => ({
  threads: Number(await page.getAttribute('[data-testid=timings]', 'data-threads').catch(() => null)),
  isolated: await page.evaluate(() => self.crossOriginIsolated),
  sw: await page.evaluate(() => !!navigator.serviceWorker?.controller),
});

async function tests(base) {
  const cores = availableParallelism();
  const headers = await fetch(base).then((r) => Object.fromEntries(r.headers));
  check('the server sends no isolation headers of its own', !headers['cross-origin-opener-policy'] && !headers['cross-origin-embedder-policy'], J(headers));
  const h = await openPage('static-host', base, { timeout: 30 * S });
  const { page } = h;
  let snap = await settle(page, 0, RUN_MS);
  const first = await threadsOf(page);
  check('first visit: the page works, not isolated, on one thread', snap.state === 'done' && !first.isolated && first.threads === 1, J({ state: snap.state, first }));
  await page.waitForFunction(() => navigator.serviceWorker?.controller, null, { timeout: 30 * S }).catch(() => {});
  await page.reload();
  snap = await settle(page, 0, RUN_MS);
  const second = await threadsOf(page);
  if (cores < 2) skip('after a reload: isolated, on every core', `${cores} core here`);
  else check('after a reload: the service worker isolates the page and the worker runs on every core',
    snap.state === 'done' && second.sw && second.isolated && second.threads === cores, J({ state: snap.state, second, cores }));
  await shot(page, 'static-host.png');
  noErrors(h);

  // The embed view on its own (top-level), in the same browser profile: isolated as well.
  const embed = await h.context.newPage();
  await embed.goto(new URL('embed.html?editable', base).href);
  await embed.waitForSelector('[data-testid=embed-view]', { timeout: 30 * S });
  check('the embed view opened on its own is isolated too', await embed.evaluate(() => self.crossOriginIsolated));
  await h.context.close();

  // Framed by another site (not isolated itself), the embed cannot be: it still works.
  const host = await hostPage(`<!doctype html><title>blog</title><iframe src="${base}embed.html?editable" width="600" height="400"></iframe>`, 'localhost');
  try {
    const f = await openPage('static-host-framed', host.url, { timeout: 30 * S });
    const frame = f.page.frameLocator('iframe');
    await frame.locator('[data-testid=embed-view]').waitFor({ timeout: 30 * S });
    const framed = await f.page.frames()[1].evaluate(() => self.crossOriginIsolated);
    check('framed by a site that is not isolated, the embed still runs (on one thread)', framed === false);
    info('a framed embed gets more compute from the GPU path, not from threads');
    await f.context.close();
  } finally {
    host.close();
  }
}

const { server, url } = plainServer();
try {
  info(`${await browserVersion()} -> ${DIST}`);
  const base = await url;
  await group('static host', null, () => tests(base));
} catch (e) {
  check('e2e harness', false, e.stack || e.message);
} finally {
  server.kill();
  await close();
}
finish();

#!/usr/bin/env node
// The report card's time per item in the page (headless Chromium): each method alone, on the
// page's own sample of the built-in suite, so the figure is the page's beside `salient evaluate`'s.
//
//   node tests/e2e/bench-report.mjs --url URL [--methods saliency,...] [--sample N] [--timeout-s 1800]
//
// --methods: the methods to time (default: every method the report card offers); --sample: items
// per family for each (default: the page's own default per method, shown in its number field).
// Prints one JSON line per method on stdout as soon as it is known:
//   {"kind":"page-evaluate","method","status":"ok"|"failed","reason","per_family","checked","ms",
//    "ms_per_item","threads"}
// The page's contract used here: [data-testid=status][data-state], [data-testid=timings]
// (data-threads), the report card's report-panel, report-method / report-sample (data-method),
// report-run, and report-state (data-state, data-ms, data-checked).
import { launch, S, opt, recorder, settle } from './lib.mjs';

const list = (s) => String(s).split(',').map((x) => x.trim()).filter(Boolean);
const URL_ = opt('url', 'http://127.0.0.1:8080/');
const ONLY = opt('methods', null);
const SAMPLE = opt('sample', null);
const TIMEOUT_MS = Number(opt('timeout-s', 1800)) * 1000;
const log = (m) => process.stderr.write(`[bench-report ${new Date().toISOString().slice(11, 19)}] ${m}\n`);
const emit = (o) => process.stdout.write(JSON.stringify(o) + '\n');

const browser = await launch();
let exitCode = 0;
try {
  const page = await browser.newPage();
  await page.addInitScript(() => { try { localStorage.clear(); sessionStorage.clear(); } catch { /* none */ } });
  await page.addInitScript(recorder);
  await page.goto(URL_);
  const first = await settle(page, 0, 300 * S);
  if (first.state !== 'done') throw new Error(`the page did not reach its first map: ${first.state} ${first.message}`);
  const threads = Number(await page.getAttribute('[data-testid=timings]', 'data-threads'));
  await page.click('[data-testid=report-panel] > summary');
  const offered = await page.$$eval('[data-testid=report-method]', (es) => es.map((e) => e.getAttribute('data-method')));
  const methods = ONLY ? list(ONLY) : offered;
  for (const method of methods) {
    const result = { kind: 'page-evaluate', method, status: 'failed', reason: null, threads };
    try {
      if (!offered.includes(method)) throw new Error(`the report card does not offer ${method}`);
      for (const m of offered) {
        const box = `[data-testid=report-method][data-method=${m}]`;
        if (m === method) await page.check(box); else await page.uncheck(box);
      }
      const field = `[data-testid=report-sample][data-method=${method}]`;
      if (SAMPLE) { await page.fill(field, SAMPLE); await page.dispatchEvent(field, 'change'); }
      result.per_family = Number(await page.inputValue(field));
      log(`${method}: ${result.per_family} item(s) per family`);
      await page.click('[data-testid=report-run]');
      // the run starts by showing "running", so the wait below cannot find the last method's "done"
      await page.waitForSelector('[data-testid=report-state][data-state=running]', { timeout: 30 * S });
      const done = await page.waitForSelector('[data-testid=report-state]:is([data-state=done], [data-state=error], [data-state=stopped])',
        { timeout: TIMEOUT_MS });
      const state = await done.getAttribute('data-state');
      if (state !== 'done') throw new Error(`report card ${state}: ${(await done.textContent()).trim()}`);
      result.ms = Number(await done.getAttribute('data-ms'));
      result.checked = Number(await done.getAttribute('data-checked'));
      result.ms_per_item = result.ms / Math.max(1, result.checked);
      result.status = 'ok';
    } catch (e) {
      result.reason = String(e.message).split('\n')[0];
      exitCode = 1;
    }
    log(JSON.stringify(result));
    emit(result);
  }
} catch (e) {
  log(`FAILED: ${e.message}`);
  exitCode = 1;
} finally {
  await browser.close().catch(() => {});
}
process.exit(exitCode);

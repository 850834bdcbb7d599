// Shared by run.mjs and bench-page.mjs: browser launch, a state recorder injected into the page,
// waiting for runs to settle, and a snapshot of the page's contract elements.
import { chromium } from 'playwright-core';

export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
export const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-dev-shm-usage'];

// playwright passes --headless itself and gives each launch a fresh temporary user-data-dir.
export const launchOptions = () => ({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
export const launch = () => chromium.launch(launchOptions());

// Runs in the page before its scripts: records every data-state transition of the status element
// (also ones that happen within one task) and the progress bar's byte counts.
export function recorder() {
  const rec = (window.__salient = { states: [], texts: [], maxLoaded: 0, total: null, progressSeen: false });
  const push = (state, text) => {
    const last = rec.states[rec.states.length - 1];
    if (state != null && (!last || last.state !== state)) rec.states.push({ state, text: text || '', t: performance.now() });
  };
  const progress = () => {
    const p = document.querySelector('[data-testid=progress]');
    if (!p) return;
    rec.progressSeen = true;
    const l = Number(p.getAttribute('data-loaded')), t = p.getAttribute('data-total');
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
                         attributeFilter: ['data-state', 'data-loaded', 'data-total'] });
}

export const mark = (page) => page.evaluate(() => window.__salient.states.length);
export const states = (page, since = 0) => page.evaluate((n) => window.__salient.states.slice(n), since);
export const pageNow = (page) => page.evaluate(() => performance.now());
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
                    total: a(tm, 'data-total-ms'), memory: a(tm, 'data-wasm-memory') } : null,
    progress: { seen: window.__salient.progressSeen, maxLoaded: window.__salient.maxLoaded, total: window.__salient.total },
  };
});


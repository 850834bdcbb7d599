#!/usr/bin/env node
// Browser end-to-end test of the text that is the map (issue 29), in headless Chromium on the
// default model: the shading lies on the editor's own text and follows edits (typing, undo,
// IME-like composition), goes stale while a rerun is due, tooltips by pointer, caret and
// Alt+arrows; the built-in examples and their captions; folded panels kept in links; a phone's
// width and touch; dark mode. Screenshots at 1280 and 390 px, light and dark.
//
//   node tests/e2e/editor.mjs URL [DIST_DIR]
//
// Artifacts go to $TEST_OUT (default <repo>/test-out): page-*.png, fail-*.png,
// e2e-editor-console.log.
import { URL_, OUT, S, createSuite, settle, mark, openPanel } from './lib.mjs';
import { mkdirSync } from 'node:fs';
import { inflateRawSync } from 'node:zlib';
import { join } from 'node:path';

const RUN_MS = 150 * S;
mkdirSync(OUT, { recursive: true });
const { check, info, shot, group, noErrors, openPage, browserVersion, close, finish } =
  createSuite({ url: URL_, out: OUT, log: join(OUT, 'e2e-editor-console.log'), name: 'editor e2e', watchdogS: 900 });
const J = (v) => JSON.stringify(v);
const decode = (link) => JSON.parse(inflateRawSync(Buffer.from(/#s=v1\.([^&]+)/.exec(link)[1], 'base64url')).toString());

// The shading as drawn: each piece of the editor map in order (plain text or a span), where it
// starts in the text, and how the box lies over the textarea.
const shading = (page) => page.evaluate(() => {
  const map = document.querySelector('[data-testid=editor-map]');
  const area = document.querySelector('[data-testid=editor]');
  const box = document.querySelector('[data-testid=heatmap]');
  const pieces = [];
  let at = 0;
  for (const node of map.childNodes) {
    const text = node.textContent.replace(/\u200b$/, '');
    if (node.nodeType === 1 && node.hasAttribute('data-unit')) {
      pieces.push({ at, text, index: Number(node.getAttribute('data-index')), score: Number(node.getAttribute('data-score')),
                    unit: Number(node.getAttribute('data-unit')), marker: text === '' });
    }
    at += text.length;
  }
  const r = (e) => { const b = e.getBoundingClientRect(); return [b.left, b.top, b.width, b.height].map(Math.round); };
  return {
    pieces, text: map.textContent.replace(/\u200b$/, ''), value: area.value, current: box.getAttribute('data-current'),
    mapRect: r(map), areaRect: r(area), scrolled: area.scrollTop, overflow: area.scrollHeight - area.clientHeight,
    stale: pieces.length ? getComputedStyle(map.querySelector('[data-unit]')).opacity : null,
  };
});
const tip = (page) => page.evaluate(() => {
  const t = document.querySelector('[data-testid=editor-tip]');
  return t ? { unit: Number(t.getAttribute('data-unit')), text: t.textContent } : null;
});
const typeAtEnd = async (page, text) => {
  await page.focus('[data-testid=editor]');
  await page.keyboard.press('Control+End');
  await page.keyboard.type(text);
};

async function tests() {
  const h = await openPage('editor', '', { timeout: 30 * S, contextOptions: { viewport: { width: 1280, height: 800 }, permissions: ['clipboard-read', 'clipboard-write'] } });
  const { page } = h;
  await settle(page, 0, RUN_MS);

  await group('the shading lies on the editor\'s text', h, async () => {
    const s = await shading(page);
    const tokens = s.pieces.filter((p) => !Number.isNaN(p.index));
    check('every token of the map is a span in the editor, in order', tokens.length > 5 && tokens.every((t, i) => t.index === i), J(tokens.map((t) => t.text)));
    info(`tokens without characters of their own (markers): ${J(tokens.filter((t) => t.marker).map((t) => t.index))}`);
    check('the shading copy holds exactly the editor\'s text', s.text === s.value, J([s.text, s.value]));
    check('the map lies over the editor\'s own box', J(s.mapRect) === J(s.areaRect), J([s.mapRect, s.areaRect]));
    check('the editor never scrolls away from its shading', s.scrolled === 0 && s.overflow <= 1, J(s));
    check('the map is current', s.current === 'true');
    // Each span sits where the textarea draws its characters: a caret put at a span's start is
    // where the span is (Chromium's caret rectangle is not exposed; a mirror measurement is).
    const aligned = await page.evaluate(() => {
      const area = document.querySelector('[data-testid=editor]'), map = document.querySelector('[data-testid=editor-map]');
      const mirror = document.createElement('div');
      const cs = getComputedStyle(area);
      for (const k of ['fontFamily', 'fontSize', 'fontWeight', 'fontStyle', 'fontVariantLigatures', 'fontKerning', 'lineHeight', 'letterSpacing', 'wordSpacing',
                       'paddingTop', 'paddingRight', 'paddingBottom', 'paddingLeft', 'borderTopWidth', 'borderRightWidth', 'borderBottomWidth', 'borderLeftWidth',
                       'borderStyle', 'boxSizing', 'width', 'whiteSpace', 'overflowWrap', 'wordBreak', 'tabSize', 'textIndent'])
        mirror.style[k] = cs[k];
      mirror.style.position = 'absolute'; mirror.style.visibility = 'hidden'; mirror.style.top = '0'; mirror.style.left = '0';
      document.body.appendChild(mirror);
      const spans = [...map.querySelectorAll('[data-unit]')].filter((e) => e.textContent);
      const out = [];
      let at = 0;
      for (const node of map.childNodes) {
        const text = node.textContent.replace(/\u200b$/, '');
        if (node.nodeType === 1 && text) {
          mirror.textContent = area.value.slice(0, at);
          const probe = document.createElement('span'); probe.textContent = '\u200b'; mirror.appendChild(probe);
          const p = probe.getBoundingClientRect(), m = mirror.getBoundingClientRect();
          const s = node.getClientRects()[0], b = map.getBoundingClientRect();
          out.push([Math.round(p.left - m.left - (s.left - b.left)), Math.round(p.top - m.top - (s.top - b.top))]);
        }
        at += text.length;
      }
      mirror.remove();
      return { spans: spans.length, offsets: out };
    });
    check('every span starts where the textarea\'s layout puts its first character', aligned.offsets.every(([dx, dy]) => Math.abs(dx) <= 1 && Math.abs(dy) <= 4), J(aligned));
    await page.screenshot({ path: join(OUT, 'page-1280-light.png') });
  });

  await group('hover, caret and Alt+arrows show a token\'s tooltip', h, async () => {
    const s = await shading(page);
    const target = s.pieces.find((p) => !p.marker && p.index === 3);
    const box = await page.evaluate((u) => { const b = document.querySelector(`[data-testid=editor-map] [data-unit="${u}"]`).getBoundingClientRect(); return { x: b.left + b.width / 2, y: b.top + b.height / 2 }; }, target.unit);
    await page.mouse.move(box.x, box.y);
    let t = await tip(page);
    check('hovering a token shows its tooltip (exact text, id, score)', t && t.unit === target.unit && t.text.includes('id ') && t.text.includes('score'), J(t));
    await page.mouse.move(5, 5);
    check('leaving the text hides it', (await tip(page)) === null);
    await page.focus('[data-testid=editor]');
    await page.keyboard.press('Control+Home');
    await page.keyboard.press('ArrowRight');
    t = await tip(page);
    const first = s.pieces.find((p) => !p.marker);
    check('moving the caret shows the tooltip of the token it is in', t && t.unit === first.unit, J({ t, first }));
    await page.keyboard.press('Alt+ArrowRight');
    const after = await tip(page);
    const caret = await page.$eval('[data-testid=editor]', (e) => e.selectionStart);
    const second = s.pieces.filter((p) => !p.marker)[1];
    check('Alt+→ jumps to the next token', after && after.unit === second.unit && caret === second.at, J({ after, caret, second }));
    await page.keyboard.press('Escape');
    check('Escape hides it', (await tip(page)) === null);
  });

  await group('the shading follows edits and goes stale until the rerun', h, async () => {
    const before = await shading(page);
    const since = await mark(page);
    // Replace a word in the middle: the spans around it go, the others keep their characters.
    const value = before.value;
    const word = ' located';
    const at = value.indexOf(word);
    await page.focus('[data-testid=editor]');
    await page.$eval('[data-testid=editor]', (e, [a, b]) => e.setSelectionRange(a, b), [at, at + word.length]);
    await page.keyboard.type(' found');
    const edited = await shading(page);
    const expected = value.slice(0, at) + ' found' + value.slice(at + word.length);
    check('typing changes the text and its copy together', edited.value === expected && edited.text === expected, J(edited.text));
    const kept = edited.pieces.filter((p) => !p.marker);
    const right = kept.every((p) => expected.slice(p.at, p.at + p.text.length) === p.text);
    const gone = before.pieces.filter((p) => !p.marker).length - kept.length;
    const onEdit = kept.filter((p) => p.at < at + ' found'.length && p.at + p.text.length > at);
    check('shading stays only on unchanged characters, and leaves the edited word', right && gone >= 1 && onEdit.length === 0 && kept.length >= 3, J({ gone, onEdit, kept: kept.map((p) => p.text) }));
    check('the old shading is shown as stale while the rerun is due', edited.current === 'false' && Number(edited.stale) < 0.9, J({ c: edited.current, o: edited.stale }));
    await settle(page, since, RUN_MS);
    const rerun = await shading(page);
    check('after the rerun every token is shaded again and current', rerun.current === 'true' && rerun.pieces.length > kept.length && rerun.text === expected, J(rerun.pieces.length));
    // Undo brings the old text back, in the textarea and in its copy.
    await page.focus('[data-testid=editor]');
    // Typing over a selection is two undo steps here (the typed word, then the replaced
    // selection), where a bare textarea takes one: see the closing note of this change.
    let steps = 0, undone = null;
    while (steps < 2 && (undone = await shading(page)).value !== value) { await page.keyboard.press('Control+z'); steps++; }
    undone = await shading(page);
    info(`undo took ${steps} step(s)`);
    check('Ctrl+Z undoes the edit (the browser\'s own undo), the copy following', undone.value === value && undone.text === value, J(undone.value));
    for (let i = 0; i < steps; i++) await page.keyboard.press('Control+Shift+z');
    check('Ctrl+Shift+Z redoes it', (await shading(page)).value === expected);
  });

  await group('IME composition and pasted text', h, async () => {
    const cdp = await h.context.newCDPSession(page);
    const since = await mark(page);
    await typeAtEnd(page, ' ');
    await cdp.send('Input.imeSetComposition', { text: 'に', selectionStart: 1, selectionEnd: 1 });
    await cdp.send('Input.imeSetComposition', { text: 'にほ', selectionStart: 2, selectionEnd: 2 });
    const composing = await shading(page);
    await cdp.send('Input.insertText', { text: '日本' });
    const done = await shading(page);
    check('a composition shows in the copy as it is typed, and its result stays', composing.text === composing.value && done.value.endsWith(' 日本') && done.text === done.value, J([composing.value.slice(-6), done.value.slice(-6)]));
    // A real paste (Ctrl+V) of rich text: the editor takes its plain text.
    await page.evaluate(() => navigator.clipboard.write([new ClipboardItem({
      'text/html': new Blob(['<b>bold</b>'], { type: 'text/html' }), 'text/plain': new Blob([' bold'], { type: 'text/plain' }) })]));
    await page.focus('[data-testid=editor]');
    await page.keyboard.press('Control+End');
    await page.keyboard.press('Control+v');
    const pasted = await shading(page);
    check('pasting rich text inserts its plain text (no markup in the editor or its copy)', pasted.value.endsWith('日本 bold') && pasted.text === pasted.value && !(await page.$('[data-testid=editor-map] b')), J(pasted.value.slice(-20)));
    await settle(page, since, RUN_MS);
    const after = await shading(page);
    check('multi-byte text maps to whole characters after its rerun', after.current === 'true' && after.text === after.value, J(after.pieces.slice(-3)));
  });

  await group('built-in examples, their captions, and the way back', h, async () => {
    const mine = 'My own text, which must come back.';
    let since = await mark(page);
    await page.fill('[data-testid=editor]', mine);
    await settle(page, since, RUN_MS);
    const examples = await page.$$eval('[data-testid=example]', (es) => es.map((e) => e.getAttribute('data-example')));
    check('five examples are offered', examples.length === 5, J(examples));
    for (const name of examples) {
      since = await mark(page);
      await page.click(`[data-testid=example][data-example=${name}]`);
      await settle(page, since, RUN_MS);
      const s = await shading(page);
      const caption = await page.$eval('[data-testid=example-caption]', (e) => ({ name: e.getAttribute('data-example'), evidence: e.getAttribute('data-evidence'), text: e.textContent })).catch(() => null);
      const state = await page.$eval('[data-testid=status]', (e) => e.getAttribute('data-state'));
      const top = s.pieces.filter((p) => !p.marker).sort((a, b) => Math.abs(b.score) - Math.abs(a.score))[0];
      const from = s.value.indexOf(caption?.evidence ?? '\u0000'), to = from + (caption?.evidence ?? '').length;
      info(`${name}: top token ${J(top?.text)} · ${caption?.text}`);
      check(`example ${name}: runs, shows its caption, and its map's top token is the evidence the caption names`,
        state === 'done' && caption?.name === name && from >= 0 && top && top.at >= from && top.at + top.text.length <= to, J({ state, caption, top, from, to }));
    }
    await shot(page, 'page-examples.png');
    since = await mark(page);
    await page.click('[data-testid=example-back]');
    await settle(page, since, RUN_MS);
    check('one click brings the person\'s own text back', (await page.inputValue('[data-testid=editor]')) === mine);
    check('and the caption goes', (await page.$('[data-testid=example-caption]')) === null);
  });

  await group('folded panels are kept in links', h, async () => {
    await page.click('[data-testid=panel][data-panel=view] > summary');
    const folded = await page.$eval('[data-testid=panel][data-panel=view]', (e) => e.open);
    await page.check('[data-testid=share-snapshot]').catch(() => {});
    await page.click('[data-testid=share]');
    await page.waitForFunction(() => document.querySelector('[data-testid=share-link]').value.includes('#s=v1.'), null, { timeout: 5 * S });
    const link = await page.inputValue('[data-testid=share-link]');
    const state = decode(link);
    check('folding a panel is in the link', folded === false && (state.settings?.view?.collapsed || []).includes('view'), J(state.settings?.view));
    const opened = await openPage('editor-link', new URL(link).hash, { timeout: 30 * S });
    await opened.page.waitForSelector('[data-testid=panel][data-panel=view]', { state: 'attached', timeout: 30 * S });
    check('the link opens with the panel folded', (await opened.page.$eval('[data-testid=panel][data-panel=view]', (e) => e.open)) === false);
    await openPanel(opened.page, 'view');
    check('and it unfolds', await opened.page.$eval('[data-testid=panel][data-panel=view]', (e) => e.open));
    noErrors(opened);
    await opened.context.close();
  });
  noErrors(h);
  await h.context.close();

  for (const scheme of ['light', 'dark']) {
    await group(`a phone, ${scheme}`, null, async () => {
      const p = await openPage(`phone-${scheme}`, '', { timeout: 30 * S, contextOptions: { viewport: { width: 390, height: 844 }, hasTouch: true, isMobile: true, colorScheme: scheme } });
      await settle(p.page, 0, RUN_MS);
      const widths = await p.page.evaluate(() => ({ scroll: document.scrollingElement.scrollWidth, inner: window.innerWidth,
        wide: [...document.querySelectorAll('body *')].filter((e) => e.getBoundingClientRect().right > window.innerWidth + 1 && getComputedStyle(e).display !== 'none' && !e.closest('details:not([open])')).slice(0, 5).map((e) => e.tagName + '.' + e.className) }));
      check(`390 px (${scheme}): nothing is wider than the screen`, widths.scroll <= widths.inner, J(widths));
      const s = await shading(p.page);
      check(`390 px (${scheme}): the map lies on the editor`, J(s.mapRect) === J(s.areaRect) && s.pieces.length > 5, J([s.mapRect, s.areaRect]));
      const span = s.pieces.find((x) => !x.marker && x.index === 2);
      const b = await p.page.evaluate((u) => { const r = document.querySelector(`[data-testid=editor-map] [data-unit="${u}"]`).getBoundingClientRect(); return { x: r.left + r.width / 2, y: r.top + r.height / 2 }; }, span.unit);
      await p.page.touchscreen.tap(b.x, b.y);
      const t = await tip(p.page);
      check(`390 px (${scheme}): a tap places the caret and shows that token's score`, t && t.unit === span.unit, J({ t, span }));
      const colours = await p.page.evaluate(() => ({ bg: getComputedStyle(document.documentElement).backgroundColor, ink: getComputedStyle(document.body).color }));
      const dark = /rgb\((\d+)/.exec(colours.bg)?.[1] < 80;
      check(`${scheme}: the page follows the system's colour scheme`, scheme === 'dark' ? dark : !dark, J(colours));
      await shot(p.page, `page-390-${scheme}.png`);
      noErrors(p);
      await p.context.close();
    });
  }
  await group('1280 px, dark', null, async () => {
    const p = await openPage('dark', '', { timeout: 30 * S, contextOptions: { viewport: { width: 1280, height: 800 }, colorScheme: 'dark' } });
    await settle(p.page, 0, RUN_MS);
    const first = await p.page.evaluate(() => {
      const inView = (s) => { const e = document.querySelector(s); if (!e) return false; const r = e.getBoundingClientRect(); return r.height > 0 && r.bottom <= window.innerHeight; };
      return { editor: inView('[data-testid=editor]'), legend: inView('[data-testid=legend]'), method: inView('[data-testid=method]'),
               target: inView('[data-testid=target]'), predictions: inView('[data-testid=topk]') };
    });
    check('the first screen (1280 × 800) holds the editor, legend, method, predictions and target', Object.values(first).every(Boolean), J(first));
    await p.page.screenshot({ path: join(OUT, 'page-1280-dark.png') });
    noErrors(p);
    await p.context.close();
  });
}

try {
  info(`${await browserVersion()} -> ${URL_}`);
  await group('editor', null, tests);
} catch (e) {
  check('e2e harness', false, e.stack || e.message);
} finally {
  await close();
}
finish();

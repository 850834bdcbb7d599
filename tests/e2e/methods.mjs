#!/usr/bin/env node
// Browser end-to-end tests of the page's methods, targets, views, faithfulness, continuation and
// comparison (issue 3), in headless Chromium on the default model.
//
//   node tests/e2e/methods.mjs URL [DIST_DIR]
//
// Prints `ok  name` / `FAIL name details` per check and a last line `N passed, M failed`; exits 1
// on any failure. Artifacts go to $TEST_OUT (default <repo>/test-out): methods.png (the page with
// a continuation matrix and three compared methods), fail-*.png, e2e-methods-console.log.
import { ROOT, URL_, DIST, OUT, S, createSuite, mark, openPanel, settle, states, MODEL_FILE } from './lib.mjs';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { readGgufTokens, tokenId } from './gguf-vocab.mjs';

const LOAD_AND_RUN_MS = 150 * S;
const RUN_MS = 120 * S;

const EXAMPLE = 'The Eiffel Tower is located in the city of';
const EXAMPLE_TOKENS = 10;
// The methods whose scores may be negative (the others are norms, weights or flows: ≥ 0).
const SIGNED = new Set(['grad_x_input', 'integrated_gradients', 'occlusion', 'kernel_shap', 'lime', 'shapley_sampling']);
// The sampling methods: standard errors on every span; the Shapley ones also an efficiency line.
const SAMPLING = ['kernel_shap', 'lime', 'shapley_sampling'];
const EFFICIENT = new Set(['kernel_shap', 'shapley_sampling']);
const PERTURBATION = ['features', 'budget', 'baseline', 'seed'];
// The settings each method shows (the faithfulness check adds baseline and seed when it is on).
const PARAMS = {
  saliency: [], grad_x_input: [], integrated_gradients: ['steps', 'baseline'],
  smoothgrad: ['samples', 'sigma', 'seed'], occlusion: ['baseline'],
  kernel_shap: PERTURBATION, lime: PERTURBATION, shapley_sampling: PERTURBATION,
  attention: ['layer', 'head'], rollout: ['layer', 'head'],
};

mkdirSync(OUT, { recursive: true });
const { note, check, skip, info, shot, group, noErrors, openPage, browserVersion, close, finish } =
  createSuite({ url: URL_, out: OUT, log: join(OUT, 'e2e-methods-console.log'), name: 'methods e2e', watchdogS: 2400 });
const J = (v) => JSON.stringify(v);
const num = (v) => (v === null || v === undefined || v === '' ? NaN : Number(v));
const finite = (v) => Number.isFinite(num(v));

// Token ids straight from the GGUF, independent of the engine.
let vocab = null;
for (const p of [join(DIST, 'models', MODEL_FILE), join(ROOT, 'models', MODEL_FILE)]) {
  if (existsSync(p)) { try { vocab = readGgufTokens(p); break; } catch (e) { note('setup', `vocab ${p}: ${e.message}`); } }
}

// What the tests read beyond lib.mjs's snapshot: the main map's spans, the legend, the panels.
const view = (page) => page.evaluate(() => {
  const q = (s) => document.querySelector(`[data-testid=${s}]`);
  const qa = (s, root = document) => [...root.querySelectorAll(`[data-testid=${s}]`)];
  const a = (e, n) => (e ? e.getAttribute(n) : null);
  const f = q('faithfulness'), c = q('completeness'), legend = q('legend'), foil = q('foil');
  return {
    state: a(q('status'), 'data-state'), message: q('status')?.textContent.trim(),
    editor: q('editor')?.value,
    threads: a(q('timings'), 'data-threads'),
    tokens: qa('token').map((e) => ({ index: a(e, 'data-index'), id: a(e, 'data-token-id'), score: a(e, 'data-score'), norm: a(e, 'data-norm'), error: a(e, 'data-error') })),
    groups: qa('group').map((e) => ({ first: a(e, 'data-first'), last: a(e, 'data-last'), score: a(e, 'data-score'), norm: a(e, 'data-norm'), error: a(e, 'data-error') })),
    sampling: q('sampling') ? { evaluations: a(q('sampling'), 'data-evaluations'), mean: a(q('sampling'), 'data-mean-error'), max: a(q('sampling'), 'data-max-error'), text: q('sampling').textContent } : null,
    preds: qa('prediction').map((e) => a(e, 'data-token-id')),
    target: a(q('target'), 'data-token-id'),
    foil: foil ? a(foil, 'data-token-id') : null,
    legend: legend ? { text: legend.textContent, min: a(legend, 'data-min'), mid: a(legend, 'data-mid'), max: a(legend, 'data-max') } : null,
    completeness: c ? { error: a(c, 'data-error'), gradients: a(c, 'data-gradients'), text: c.textContent } : null,
    faithfulness: f ? {
      state: a(f, 'data-state'), svg: !!f.querySelector('svg polyline'), text: f.textContent,
      comprehensiveness: a(f, 'data-comprehensiveness'), sufficiency: a(f, 'data-sufficiency'),
      randomComprehensiveness: a(f, 'data-random-comprehensiveness'), randomSufficiency: a(f, 'data-random-sufficiency'),
      ticks: f.querySelectorAll('svg .axis text').length,
    } : null,
    params: [...document.querySelectorAll('[data-testid^=param-]')].map((e) => e.getAttribute('data-testid').slice(6)),
    // Each row's scores (data-scores), padded to the matrix's columns with nulls as blank cells.
    matrixRows: qa('matrix-row').map((r) => {
      const scores = (a(r, 'data-scores') || '').split(' ').filter(Boolean);
      const columns = Number(a(q('matrix'), 'data-columns'));
      return { id: a(r, 'data-token-id'), cells: Array.from({ length: columns }, (_, i) => scores[i] ?? null) };
    }),
    compareMaps: qa('compare-map').map((m) => ({ method: a(m, 'data-method'), scores: qa('compared-token', m).map((t) => a(t, 'data-score')) })),
    agreements: qa('agreement').map((e) => ({ a: a(e, 'data-a'), b: a(e, 'data-b'), spearman: a(e, 'data-spearman') })),
  };
});

// The editor's tooltip over token `index`, by pointer (the textarea lies over the shading).
async function tipOf(page, index) {
  const box = await page.evaluate((i) => {
    const b = document.querySelector(`[data-testid=editor-map] [data-testid=token][data-index="${i}"]`).getBoundingClientRect();
    return { x: b.left + b.width / 2, y: b.top + b.height / 2 };
  }, index);
  await page.mouse.move(box.x, box.y);
  const text = await page.$eval('[data-testid=editor-tip]', (e) => e.textContent).catch(() => '');
  await page.mouse.move(5, 5);
  return text;
}

const brief = (v) => `state=${v.state} message=${J(v.message)}`;
const scoresOf = (v) => v.tokens.map((t) => num(t.score));

// Waits for the run started after `since` to settle, then for the faithfulness checks after it.
async function settled(page, since, timeout = RUN_MS) {
  await settle(page, since, timeout);
  try {
    await page.waitForFunction(() => !document.querySelector(
      '[data-testid=faithfulness][data-state=measuring], [data-testid=row-faithfulness][data-state=measuring]'),
    null, { timeout, polling: 200 });
  } catch (e) { if (!/Timeout/i.test(e.message)) throw e; }
  return view(page);
}

// Does `act` and waits for the run it causes.
async function after(page, act, timeout = RUN_MS) {
  const m = await mark(page);
  await act();
  return settled(page, m, timeout);
}

async function tests() {
  const h = await openPage('methods', '', { timeout: 30 * S });
  const { page } = h;
  let v = await settled(page, 0, LOAD_AND_RUN_MS);
  if (!check('page loads and the first run is done', v.state === 'done', brief(v))) return;

  await group('every method', h, async () => {
    const options = await page.$$eval('[data-testid=method] option', (os) => os.map((o) => ({ value: o.value, label: o.textContent })));
    check('method select lists the registry (10 methods, labelled)',
      J(options.map((o) => o.value)) === J(Object.keys(PARAMS)) && options.every((o) => o.label && o.label !== o.value), J(options));
    for (const { value } of options) {
      v = await after(page, () => page.selectOption('[data-testid=method]', value));
      const s = scoresOf(v);
      check(`${value}: one finite score per token`, v.state === 'done' && s.length === EXAMPLE_TOKENS && s.every(Number.isFinite),
        `${brief(v)} scores=${J(s)}`);
      if (!SIGNED.has(value)) check(`${value}: unsigned scores are >= 0`, s.every((x) => x >= 0), J(s));
      const expected = [...new Set([...PARAMS[value], 'baseline', 'seed'])].sort();
      check(`${value}: shows its settings ${J(PARAMS[value])} (+ baseline, seed for faithfulness)`,
        J([...v.params].sort()) === J(expected), J(v.params));
      const f = v.faithfulness;
      check(`${value}: faithfulness panel with an svg deletion curve, axis ticks and finite numbers`,
        f && f.state === 'done' && f.svg && f.ticks >= 8 && [f.comprehensiveness, f.sufficiency, f.randomComprehensiveness, f.randomSufficiency].every(finite),
        J(f));
      if (value === 'integrated_gradients') {
        const c = v.completeness;
        check('integrated gradients: completeness error finite and < 1 % at default settings',
          c && finite(c.error) && num(c.error) >= 0 && num(c.error) < 0.01 && /Σ scores = .*f\(x\) − f\(baseline\) = .*error/.test(c.text), J(c));
        check('integrated gradients: says how many of its 128 steps it took',
          c && Number.isInteger(num(c.gradients)) && num(c.gradients) >= 4 && num(c.gradients) <= 128 && c.text.includes(`with ${c.gradients} of 128 gradients`), J(c));
        info(`IG completeness: ${c?.text}`);
      } else if (EFFICIENT.has(value)) {
        const c = v.completeness;
        check(`${value}: an efficiency line, Σ scores = f(x) − f(baseline) to rounding`,
          c && finite(c.error) && num(c.error) < 1e-4 && /^Efficiency: Σ scores = .*f\(x\) − f\(baseline\) = .*the method imposes it/.test(c.text), J(c));
      } else {
        check(`${value}: no completeness line`, v.completeness === null, J(v.completeness));
      }
      if (SAMPLING.includes(value)) {
        const sm = v.sampling;
        check(`${value}: says how many coalitions it evaluated and how large the standard errors are`,
          sm && num(sm.evaluations) >= 2 && num(sm.evaluations) <= 512 && num(sm.mean) > 0 && num(sm.max) >= num(sm.mean)
            && /coalitions evaluated; standard errors ± .* on average/.test(sm.text), J(sm));
        check(`${value}: every token carries a finite standard error`,
          v.tokens.every((t) => finite(t.error) && num(t.error) >= 0), J(v.tokens.map((t) => t.error)));
      } else {
        check(`${value}: no sampling line, no standard errors`, v.sampling === null && v.tokens.every((t) => t.error === null), J(v.sampling));
      }
      if (value === 'attention') {
        const layers = await page.$$eval('[data-testid=param-layer] option', (os) => os.map((o) => o.value));
        const heads = await page.$$eval('[data-testid=param-head] option', (os) => os.map((o) => o.value));
        check('attention: layer and head selects offer "mean" and every index', layers[0] === 'mean' && layers.length === 31 && heads[0] === 'mean' && heads.length === 10,
          `layers=${layers.length} heads=${heads.length}`);
        const before = scoresOf(v);
        v = await after(page, () => page.selectOption('[data-testid=param-layer]', '3'));
        check('attention: choosing layer 3 reruns with other scores', v.state === 'done' && J(scoresOf(v)) !== J(before), J(scoresOf(v)));
        v = await after(page, () => page.selectOption('[data-testid=param-layer]', 'mean'));
      }
      info(`${value}: ${s.map((x) => x.toPrecision(3)).join(' ')} | comprehensiveness ${num(f?.comprehensiveness).toFixed(3)} (random ${num(f?.randomComprehensiveness).toFixed(3)})`);
    }
  });

  await group('bad settings', h, async () => {
    v = await after(page, () => page.selectOption('[data-testid=method]', 'integrated_gradients'));
    v = await after(page, () => page.fill('[data-testid=param-steps]', '0'));
    check('IG with 0 steps: error state with the engine\'s message, text kept',
      v.state === 'error' && /between 4 and 1024 steps/.test(v.message) && v.editor === EXAMPLE, brief(v));
    v = await after(page, () => page.fill('[data-testid=param-steps]', '16'));
    check('IG with 16 steps recovers', v.state === 'done' && v.completeness && finite(v.completeness.error)
      && num(v.completeness.gradients) <= 16, brief(v));
    v = await after(page, () => page.fill('[data-testid=param-steps]', '4'));
    const short = num(v.completeness?.error);
    if (short > 0.01) {
      const refine = await page.$('[data-testid=refine]');
      check('IG short of 1 % after its budget: says what more would cost, before spending it',
        !!refine && /gradients in all would bring it under 1 %/.test(v.completeness.text), J(v.completeness));
      const wanted = num(await refine?.getAttribute('data-steps'));
      v = await after(page, () => refine.click());
      const steps = num(await page.$eval('[data-testid=param-steps]', (e) => e.value));
      check('Refine reruns with that budget and the error falls', steps === wanted && wanted > 4
        && num(v.completeness?.error) < short, `${wanted} ${steps} ${short} -> ${v.completeness?.error}`);
    } else {
      skip('IG refine offer', `4 gradients already within 1 % here (${short})`);
    }
    v = await after(page, () => page.fill('[data-testid=param-steps]', '128'));
  });

  await group('sampling methods', h, async () => {
    v = await after(page, () => page.selectOption('[data-testid=method]', 'kernel_shap'));
    v = await after(page, () => page.fill('[data-testid=param-budget]', '5'));
    check('KernelSHAP with a budget of 5: an error that names the budget it needs, text kept',
      v.state === 'error' && /needs a budget of at least 21 coalitions for 10 features; raise the budget or take words/.test(v.message) && v.editor === EXAMPLE, brief(v));
    v = await after(page, () => page.selectOption('[data-testid=param-features]', 'word'));
    // 9 words (" Eiffel" is two tokens): 2⁹ − 2 = 510 coalitions fit a budget of 512, but not 5.
    check('words as features still need 19', v.state === 'error' && /at least 19 coalitions for 9 features; raise the budget or take sentences/.test(v.message), brief(v));
    v = await after(page, () => page.fill('[data-testid=param-budget]', '512'));
    const s = scoresOf(v);
    check('KernelSHAP over words with every coalition: the word\'s two tokens share its score, no sampling error',
      v.state === 'done' && s[1] === s[2] && v.sampling && num(v.sampling.max) === 0 && num(v.sampling.evaluations) === 511
        && /every coalition was evaluated: the scores are exact/.test(v.sampling.text), `${brief(v)} ${J(s)} ${J(v.sampling)}`);
    const tip = await tipOf(page, 9);
    check('the tooltip gives the score with its standard error', /score .*± 0\.0e0/.test(tip), J(tip));
    v = await after(page, () => page.selectOption('[data-testid=param-features]', 'token'));
    const sampled = await tipOf(page, 9);
    check('sampled over tokens: a nonzero standard error in the tooltip', /score .*± [1-9]/.test(sampled), J(sampled));
  });

  await group('components', h, async () => {
    await page.evaluate(() => { document.querySelector('[data-testid=components-panel]').open = true; });
    await page.click('[data-testid=components-run]');
    await page.waitForSelector('[data-testid=components-state][data-state=done], [data-testid=components-state][data-state=error]', { timeout: RUN_MS });
    const c = await page.evaluate(() => {
      const q = (s, root = document) => [...root.querySelectorAll(`[data-testid=${s}]`)];
      const view = document.querySelector('[data-testid=components]');
      return {
        state: document.querySelector('[data-testid=components-state]').getAttribute('data-state'),
        logit: Number(view?.getAttribute('data-logit')), residual: Number(view?.getAttribute('data-residual')),
        text: view?.textContent.slice(0, 300),
        cells: q('component').map((e) => ({ kind: e.getAttribute('data-kind'), layer: e.getAttribute('data-layer'), head: e.getAttribute('data-head'), value: Number(e.getAttribute('data-value')) })),
        lens: q('logit-lens-row').map((e) => ({ layer: Number(e.getAttribute('data-layer')), prob: Number(e.getAttribute('data-prob')), rank: Number(e.getAttribute('data-rank')) })),
        layers: q('layer-row').map((e) => e.querySelectorAll('td').length),
      };
    });
    check('components: computed, a cell per head, bias and MLP of each of 30 blocks (9 heads)',
      c.state === 'done' && c.cells.length === 30 * 11 && c.cells.filter((x) => x.kind === 'head').length === 270
        && c.cells.filter((x) => x.kind === 'mlp').length === 30 && c.cells.every((x) => Number.isFinite(x.value)), `${c.state} ${c.cells.length} ${J(c.text)}`);
    const embed = /embedding: ([+-][0-9.]+)/.exec(c.text);
    const sum = c.cells.reduce((a, x) => a + x.value, 0) + (embed ? Number(embed[1]) : NaN);
    check('components: the shares and the embedding add up to the logit', Math.abs(sum - c.logit) < 1e-3 && Math.abs(c.residual) < 1e-3,
      `Σ ${sum} vs logit ${c.logit} (residual ${c.residual})`);
    const last = c.lens[c.lens.length - 1];
    check('logit lens: one row per block, the last the model\'s own p(target) at rank 1',
      c.lens.length === 30 && last.layer === 29 && last.rank === 0 && Math.abs(last.prob - 0.7015) < 1e-3, J(last));
    check('token × block map: 30 rows of 10 tokens', c.layers.length === 30 && c.layers.every((n) => n === 10), J(c.layers));
    await page.click('[data-testid=component][data-kind=head][data-layer="23"][data-head="4"]');
    const attention = await page.evaluate(() => {
      const p = document.querySelector('[data-testid=head-attention]');
      return p ? { layer: p.getAttribute('data-layer'), head: p.getAttribute('data-head'), weights: [...p.querySelectorAll('[data-weight]')].map((e) => Number(e.getAttribute('data-weight'))) } : null;
    });
    check('clicking a head shows its attention on the text (a distribution over the 10 tokens)',
      attention && attention.layer === '23' && attention.head === '4' && attention.weights.length === 10
        && Math.abs(attention.weights.reduce((a, b) => a + b, 0) - 1) < 1e-3, J(attention));
    const [file] = await Promise.all([page.waitForEvent('download', { timeout: 20 * S }), page.click('[data-testid=components-export]')]);
    const saved = JSON.parse(readFileSync(await file.path(), 'utf8'));
    check('components download as JSON with the CLI\'s fields and the shown numbers',
      file.suggestedFilename() === 'salient-components.json' && saved.logit === c.logit && saved.components.length === 331
        && saved.logit_lens.length === 30 && saved.layer_saliency.length === 30 && saved.target.text === ' Paris' && saved.model?.name,
      J({ name: file.suggestedFilename(), logit: saved.logit, n: saved.components?.length }));
    await page.locator('[data-testid=components]').screenshot({ path: join(OUT, 'components.png') });
  });

  await group('faithfulness toggle', h, async () => {
    v = await after(page, () => page.selectOption('[data-testid=method]', 'saliency'));
    v = await after(page, () => page.uncheck('[data-testid=faithfulness-toggle]'));
    check('faithfulness off: the panel says it was not measured', v.state === 'done' && v.faithfulness?.state === 'off' && !v.faithfulness.svg, J(v.faithfulness));
    check('faithfulness off: saliency shows no settings', v.params.length === 0, J(v.params));
    v = await after(page, () => page.check('[data-testid=faithfulness-toggle]'));
    check('faithfulness on again: measured', v.faithfulness?.state === 'done', J(v.faithfulness?.state));
  });

  await group('faithfulness progress', h, async () => {
    // A text of about 150 tokens: the check's 30-odd perturbed copies take several batches.
    const long = Array(15).fill(`${EXAMPLE} Paris.`).join(' ');
    await page.evaluate(() => {
      window.__measuring = [];
      new MutationObserver(() => {
        const e = document.querySelector('[data-testid=measuring]');
        const last = window.__measuring[window.__measuring.length - 1];
        if (e && e.textContent !== last) window.__measuring.push(e.textContent);
      }).observe(document, { subtree: true, childList: true, characterData: true });
    });
    v = await after(page, () => page.fill('[data-testid=editor]', long));
    const said = await page.evaluate(() => window.__measuring);
    const percents = said.map((x) => /… (\d+) %$/.exec(x)).filter(Boolean).map((m) => Number(m[1]));
    check('the faithfulness check says how far it has come, in percent that only grows',
      v.faithfulness?.state === 'done' && percents.length >= 2 && percents.every((p, i) => i === 0 || p >= percents[i - 1]) && percents.some((p) => p > 0 && p < 100),
      `${J(said)} ${J(v.faithfulness?.state)}`);
    v = await after(page, () => page.fill('[data-testid=editor]', EXAMPLE));
  });

  await group('target kind and foil', h, async () => {
    v = await after(page, () => page.selectOption('[data-testid=method]', 'grad_x_input'));
    const plain = v;
    v = await after(page, () => page.selectOption('[data-testid=target-kind]', 'logprob'));
    check('target kind logprob: the legend names log p(…), scores change',
      /log p\(" Paris"\)/.test(v.legend?.text || '') && J(scoresOf(v)) !== J(scoresOf(plain)), v.legend?.text);
    v = await after(page, () => page.selectOption('[data-testid=target-kind]', 'prob'));
    const second = v.preds[1];
    const before = v;
    v = await after(page, () => page.locator('[data-testid=foil-button]').nth(1).click());
    const foilText = vocab ? vocab[Number(second)] : null;
    check('foil button: the foil is shown with its token id', v.state === 'done' && v.foil === second, `foil=${v.foil} expected=${second}`);
    check('foil: the legend names the difference p(target) − p(foil)',
      / − p\(/.test(v.legend?.text || '') && v.legend.text !== before.legend.text, v.legend?.text);
    check('foil: the scores change', J(scoresOf(v)) !== J(scoresOf(before)), J(scoresOf(v)));
    info(`legend with foil ${J(foilText)}: ${v.legend?.text}`);
    v = await after(page, () => page.locator('[data-testid=remove-foil]').click());
    check('remove foil: back to p(target)', v.foil === null && !/ − /.test(v.legend?.text || '') && J(scoresOf(v)) === J(scoresOf(before)),
      `${v.foil} ${v.legend?.text}`);
    // shift-click on a prediction makes it the foil too
    v = await after(page, () => page.locator('[data-testid=prediction]').nth(2).click({ modifiers: ['Shift'] }));
    check('shift-click on a prediction makes it the foil', v.foil === v.preds[2] && v.target === v.preds[0], `foil=${v.foil} preds=${J(v.preds)}`);
    v = await after(page, () => page.locator('[data-testid=remove-foil]').click());
  });

  await group('views', h, async () => {
    const tokens = v.tokens.length, tokenScores = scoresOf(v);
    const within = (groups, reduce) => groups.every((g) => {
      const run = tokenScores.slice(num(g.first), num(g.last) + 1);
      const want = reduce === 'sum' ? run.reduce((x, y) => x + y, 0) : run.reduce((x, y) => (Math.abs(y) > Math.abs(x) ? y : x), 0);
      return Math.abs(num(g.score) - want) <= 1e-5 * Math.max(1, Math.abs(want));
    });
    const cover = (groups) => groups.length > 0 && num(groups[0].first) === 0 && num(groups[groups.length - 1].last) === tokens - 1
      && groups.every((g, i) => i === 0 || num(g.first) === num(groups[i - 1].last) + 1);
    await page.selectOption('[data-testid=granularity]', 'word');
    v = await view(page);
    check('word view: fewer highlighted spans than tokens, covering every token once',
      v.tokens.length === 0 && v.groups.length > 0 && v.groups.length < tokens && cover(v.groups), J(v.groups));
    check('word view: each word scores the sum of its tokens', within(v.groups, 'sum'), J(v.groups));
    await page.selectOption('[data-testid=reduce]', 'max-abs');
    v = await view(page);
    check('max-abs reduce: each word scores its strongest token (with its sign)', within(v.groups, 'max-abs'), J(v.groups));
    await page.selectOption('[data-testid=granularity]', 'sentence');
    v = await view(page);
    check('sentence view: one span for the one sentence', v.groups.length === 1 && cover(v.groups), J(v.groups));
    await page.selectOption('[data-testid=granularity]', 'token');
    await page.selectOption('[data-testid=reduce]', 'sum');
    v = await view(page);
    check('token view again: one span per token', v.tokens.length === tokens && v.groups.length === 0, `${v.tokens.length} tokens`);
    const legendBefore = v.legend;
    await page.selectOption('[data-testid=normalisation]', 'none');
    v = await view(page);
    check('normalisation none: data-norm is the raw score clamped to [−1, 1]',
      v.tokens.every((t) => Math.abs(num(t.norm) - Math.max(-1, Math.min(1, num(t.score)))) < 1e-6) && num(v.legend.max) === 1, J(v.tokens.map((t) => [t.score, t.norm])));
    await page.selectOption('[data-testid=normalisation]', 'max-abs');
    await page.locator('[data-testid=intensity]').fill('2');
    v = await view(page);
    check('intensity ×2 halves the score at full colour (legend max)', Math.abs(num(v.legend.max) * 2 - num(legendBefore.max)) < 1e-3 * Math.abs(num(legendBefore.max)),
      `${legendBefore.max} -> ${v.legend.max}`);
    check('the legend shows min/mid/max of the colour range', [v.legend.min, v.legend.mid, v.legend.max].every(finite) && num(v.legend.min) === -num(v.legend.max), J(v.legend));
    await page.locator('[data-testid=intensity]').fill('1');
  });

  await group('a newer run supersedes the faithfulness check', h, async () => {
    const long = 'The history of the city begins long before the first bridge was built across the river. '
      + 'Farmers and fishermen lived along its banks for centuries, trading grain, salt and wool with travellers.';
    const m = await mark(page);
    await page.fill('[data-testid=editor]', long);
    await settle(page, m, RUN_MS);
    const measuring = await page.getAttribute('[data-testid=faithfulness]', 'data-state');
    if (measuring !== 'measuring') { skip('a new run supersedes a faithfulness check', `the check had already finished (${measuring})`); return; }
    const workers = h.workers, m2 = await mark(page), t0 = Date.now();
    await page.fill('[data-testid=editor]', EXAMPLE);
    await settle(page, m2, RUN_MS);
    const ms = Date.now() - t0, seq = (await states(page, m2)).map((x) => x.state);
    v = await settled(page, m2);
    // The multi-threaded worker is stopped through its stop flag and keeps its model; the
    // single-threaded one is replaced (the model's reload is not shown).
    const threaded = Number(v.threads) > 1;
    check(`an edit during the check starts the new run at once (${threaded ? 'same worker, stopped' : 'worker replaced'}, no loading shown)`,
      v.state === 'done' && v.tokens.length === EXAMPLE_TOKENS && !seq.includes('loading')
        && (threaded ? h.workers === workers : h.workers > workers),
      `${brief(v)} states=${J(seq)} workers ${workers} -> ${h.workers}`);
    check('the new map gets its own faithfulness check', v.faithfulness?.state === 'done', J(v.faithfulness?.state));
    info(`superseded the check: new map after ${ms} ms (states ${seq.join(' -> ')})`);
  });

  await group('continuation', h, async () => {
    v = await after(page, () => page.selectOption('[data-testid=method]', 'saliency'));
    v = await after(page, () => page.fill('[data-testid=editor]', 'The capital of France is'));
    const prefix = v.tokens.length;
    v = await after(page, () => page.fill('[data-testid=continuation]', ' Paris. It is'));
    const expected = vocab ? [' Paris', '.', ' It', ' is'].map((t) => tokenId(vocab, t)) : null;
    const rows = v.matrixRows;
    check('continuation: the matrix has one row per output token', v.state === 'done' && rows.length === 4
      && (!expected || J(rows.map((r) => Number(r.id))) === J(expected)), `${brief(v)} rows=${J(rows.map((r) => r.id))} expected=${J(expected)}`);
    check('continuation: row j has scores over the prefix and j output tokens, blank after',
      rows.every((r, j) => r.cells.length === prefix + 3 && r.cells.every((c, i) => (i < prefix + j ? finite(c) : c === null))),
      J(rows.map((r) => r.cells)));
    const main = scoresOf(v);
    await page.locator('[data-testid=matrix-row]').nth(2).click();
    v = await view(page);
    check('clicking row 2 shows its scores on the text', v.tokens.length === prefix + 2
      && J(scoresOf(v)) === J(rows[2].cells.slice(0, prefix + 2).map(num)) && J(scoresOf(v)) !== J(main), J(scoresOf(v)));
    check('the legend names the row\'s token', /p\(" It"\)/.test(v.legend?.text || ''), v.legend?.text);
    await page.locator('text=back to the next-token map').click();
    v = await view(page);
    check('back to the next-token map', J(scoresOf(v)) === J(main), J(scoresOf(v)));
  });

  await group('compare', h, async () => {
    const chosen = ['saliency', 'grad_x_input', 'occlusion'];
    await openPanel(page, 'compare');
    v = await after(page, async () => {
      for (const m of chosen) await page.check(`[data-testid=compare-methods] input[value=${m}]`);
    });
    check('compare: one map per chosen method, token-aligned with the text',
      v.state === 'done' && J(v.compareMaps.map((m) => m.method)) === J(chosen) && v.compareMaps.every((m) => m.scores.length === v.tokens.length && m.scores.every(finite)),
      `${brief(v)} ${J(v.compareMaps)}`);
    check('compare: the saliency row equals the main saliency map', J(v.compareMaps[0]?.scores.map(num)) === J(scoresOf(v)), J(v.compareMaps[0]));
    const pairs = v.agreements.map((g) => `${g.a}/${g.b}`);
    check('compare: three agreements with finite Spearman in [−1, 1]',
      v.agreements.length === 3 && J(pairs) === J(['saliency/grad_x_input', 'saliency/occlusion', 'grad_x_input/occlusion'])
      && v.agreements.every((g) => finite(g.spearman) && Math.abs(num(g.spearman)) <= 1), J(v.agreements));
    info(`agreements: ${v.agreements.map((g) => `${g.a}~${g.b} ${num(g.spearman).toFixed(2)}`).join(', ')}`);
    const rowsMeasured = await page.$$eval('[data-testid=row-faithfulness]', (es) => es.map((e) => e.getAttribute('data-state')));
    check('compare: each compared map has its faithfulness', rowsMeasured.length === 3 && rowsMeasured.every((s) => s === 'done'), J(rowsMeasured));
    await page.locator('[data-testid=matrix-row]').nth(0).click();   // a row on the text, for the screenshot
    await shot(page, 'methods.png');
  });

  noErrors(h);
  await h.context.close();
}

try {
  info(`${await browserVersion()} -> ${URL_}${vocab ? '' : ' (no GGUF vocabulary: continuation ids unchecked)'}`);
  await group('methods', null, tests);
} catch (e) {
  check('e2e harness', false, e.stack || e.message);
} finally {
  await close();
}
finish();

#!/usr/bin/env node
// The GPU backend in the browser, on Chromium's software WebGPU adapter (SwiftShader, very slow:
// the texts are two or three tokens, and the model is the default one cut to its first two
// blocks, served beside it). The page opened with `?backend=gpu` computes its map on
// the GPU and says so in its timings line; the map is the CPU page's map of the same text; the
// worker's own probe multiplies the model's embedding matrix in its file's blocks as the CPU does;
// and a GPU lost mid-session (the worker's device destroyed) leaves the next run computed on the
// CPU, with the reason shown.
//
//   node tests/e2e/gpu.mjs URL [DIST_DIR]
//
// Prints `ok  name` / `FAIL name details` / `SKIP name (why)` per check and `N passed, M failed,
// K skipped`; exits 1 on any failure. Artifacts go to $TEST_OUT: e2e-gpu-console.log, gpu.png.
import { DIST, OUT, S, URL_, WEBGPU_ARGS, MODEL_URL, createSuite, mark, settle, states, withU32 } from './lib.mjs';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const TEXT = 'Paris is';
const EDITED = 'Paris is a';
const RUN_MS = 600 * S;
const CUT = 'models/gpu-e2e-two-blocks.gguf';

mkdirSync(OUT, { recursive: true });
const { check, skip, info, shot, group, noErrors, openPage, close, finish } = createSuite({
  url: URL_, out: OUT, log: join(OUT, 'e2e-gpu-console.log'), name: 'gpu e2e', watchdogS: 1500, args: WEBGPU_ARGS });

const scores = (snap) => snap.tokens.map((t) => Number(t.score));
const ids = (snap) => snap.tokens.map((t) => t.id).join(' ');

// The page on `backend`, its text replaced by TEXT before the model has loaded (the first run
// then explains TEXT, not the longer example), settled.
async function pageOn(backend) {
  const h = await openPage(`gpu-${backend}`, `?backend=${backend}&model=${CUT}`, { timeout: 30 * S, allowConsole: [/XDG_RUNTIME_DIR/] });
  await h.page.fill('[data-testid=editor]', TEXT);
  const snap = await settle(h.page, 0, RUN_MS);
  return { h, snap };
}

// The later blocks' tensors stay in the file, unread.
writeFileSync(join(DIST, CUT), withU32(readFileSync(join(DIST, MODEL_URL)), 'llama.block_count', 2));
try {
  let cpu = null;
  await group('the same text on the CPU', null, async () => {
    const { h, snap } = await pageOn('cpu');
    cpu = snap;
    check('the CPU page computes its map', snap.state === 'done' && snap.tokens.length > 0, snap.message);
    check('its timings say CPU', snap.timings.backend === 'cpu' && /CPU, /.test(snap.timings.text), snap.timings.text);
    noErrors(h);
    await h.context.close();
  });

  await group('the map on the GPU, then a lost GPU', null, async () => {
    const { h, snap } = await pageOn('gpu');
    const { page } = h;
    const worker = page.workers().find((w) => /worker\.js/.test(w.url()));
    const adapter = await worker.evaluate(async () => !!(self.navigator.gpu && await self.navigator.gpu.requestAdapter()));
    if (!adapter) {
      skip('the map on the GPU', 'this browser offers no WebGPU adapter');
      return;
    }
    info(`${snap.timings.text}`);
    check('the GPU page computes its map', snap.state === 'done' && snap.tokens.length > 0, snap.message);
    check('its timings say "GPU: <adapter>" (data-backend, data-adapter) and the kernels\' compile time',
      snap.timings.backend === 'gpu' && /swiftshader/i.test(snap.timings.adapter) && /GPU: .*swiftshader/i.test(snap.timings.text)
        && Number(snap.timings.shaderMs) > 0, JSON.stringify(snap.timings));
    const [c, g] = [scores(cpu), scores(snap)];
    const largest = Math.max(...c.map(Math.abs));
    const difference = Math.max(...c.map((v, i) => Math.abs(v - g[i])));
    info(`CPU ${c.map((v) => v.toPrecision(4)).join(' ')} | GPU ${g.map((v) => v.toPrecision(4)).join(' ')}`);
    check('the GPU\'s map is the CPU\'s: the same tokens and target, scores within 1e-3 of the largest',
      ids(cpu) === ids(snap) && cpu.target?.id === snap.target?.id && difference <= 1e-3 * largest,
      `difference ${difference}, largest ${largest}`);
    await shot(page, 'gpu.png');

    const probe = JSON.parse(await worker.evaluate(() => self.salientGpuProbe()));
    check('the GPU\'s product of the 49152 × 576 embedding matrix (its Q8_0 blocks) matches the CPU\'s',
      probe.rows === 49152 && probe.cols === 576 && probe.largest_difference < 1e-4, JSON.stringify(probe));

    const lost = await worker.evaluate(() => self.salientTestLoseGpu());
    check('the worker computes on the GPU, whose device the test destroys', lost === true, String(lost));
    const m = await mark(page);
    await page.fill('[data-testid=editor]', EDITED);
    const after = await settle(page, m, RUN_MS);
    info(`${after.message} (states: ${(await states(page, m)).map((x) => x.state).join(' ')})`);
    check('after the GPU is lost, the next map is computed on the CPU', after.state === 'done' && after.tokens.length > 0
      && after.timings.backend === 'cpu', JSON.stringify(after.timings));
    check('and the page says why: in the status line and in the timings line',
      /GPU failed|On the CPU/.test(after.message) && after.timings.notOnGpu.length > 0 && /not on the GPU/.test(after.timings.text),
      `${after.message} | ${after.timings.text}`);
    noErrors(h);
    await h.context.close();
  });
} finally {
  rmSync(join(DIST, CUT), { force: true });
  await close();
}
finish();

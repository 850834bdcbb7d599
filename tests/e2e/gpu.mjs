#!/usr/bin/env node
// The GPU backend in the browser, on Chromium's software WebGPU adapter (SwiftShader): the worker
// gets an adapter, uploads the model's token embedding matrix in its file's blocks (Q8_0 in the
// default model), multiplies it with a vector in a WGSL shader and reads the result back, which
// matches the CPU's.
//
//   node tests/e2e/gpu.mjs URL [DIST_DIR]
//
// Prints `ok  name` / `FAIL name details` / `SKIP name (why)` per check and `N passed, M failed,
// K skipped`; exits 1 on any failure. Artifacts go to $TEST_OUT: e2e-gpu-console.log.
import { URL_, OUT, S, WEBGPU_ARGS, createSuite, settle } from './lib.mjs';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

mkdirSync(OUT, { recursive: true });
const { check, skip, info, group, noErrors, openPage, close, finish } = createSuite({
  url: URL_, out: OUT, log: join(OUT, 'e2e-gpu-console.log'), name: 'gpu e2e', watchdogS: 900, args: WEBGPU_ARGS });

try {
  await group('the worker multiplies a Q4_1 matrix on the GPU', null, async () => {
    const h = await openPage('gpu-probe', '', { timeout: 30 * S, allowConsole: [/XDG_RUNTIME_DIR/] });
    const { page } = h;
    const snap = await settle(page, 0, 150 * S);
    check('the page computes its map as usual', snap.state === 'done', snap.message);
    const worker = page.workers().find((w) => /worker\.js$/.test(w.url()));
    const adapter = await worker.evaluate(async () => !!(self.navigator.gpu && await self.navigator.gpu.requestAdapter()));
    if (!adapter) {
      skip('a Q4_1 product on the GPU', 'this browser offers no WebGPU adapter');
      return;
    }
    const t0 = Date.now();
    const probe = JSON.parse(await worker.evaluate(() => self.salientGpuProbe()));
    info(`${probe.adapter.name} (${probe.adapter.backend}): ${probe.rows} × ${probe.cols} in ${Date.now() - t0} ms, largest difference ${probe.largest_difference}`);
    check('the worker found a WebGPU adapter', /swiftshader/i.test(probe.adapter.name) && probe.adapter.backend === 'webgpu', probe.adapter.name);
    check('the GPU\'s product of the 49152 × 576 embedding matrix (its Q8_0 blocks) matches the CPU\'s',
      probe.rows === 49152 && probe.cols === 576 && probe.largest_difference < 1e-4, JSON.stringify(probe));
    noErrors(h);
    await h.context.close();
  });
} finally {
  await close();
}
finish();

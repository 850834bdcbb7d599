// Starts the page: Trunk would inline this, which the page's Content-Security-Policy forbids.
// init() fetches salient-web_bg.wasm beside salient-web.js; main() sees a window and mounts the UI.
import init, { test_panic } from './salient-web.js';
await init();
// For the tests of what a bug does to the page (src/web/crash.rs); nothing on the page calls it.
self.salientTestPanic = test_panic;

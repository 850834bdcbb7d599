// Starts the page: Trunk would inline this, which the page's Content-Security-Policy forbids.
// init() fetches salient-web_bg.wasm beside salient-web.js; main() sees a window and mounts the UI.
import init, { test_panic } from './salient-web.js';

// On a host that sends no isolation headers, sw.js adds them from the next visit on (the page's
// own window only: an iframe inside another site cannot be isolated this way). Where service
// workers are unavailable (some private windows, plain http), the page simply runs on one thread.
if (!self.crossOriginIsolated && 'serviceWorker' in navigator && self.isSecureContext && self.top === self) {
  navigator.serviceWorker.register('./sw.js').catch((e) => console.warn(`No service worker (${e}): the page runs on one thread here.`));
}

await init();
// For the tests of what a bug does to the page (src/web/crash.rs); nothing on the page calls it.
self.salientTestPanic = test_panic;

// Starts the page: Trunk would inline this, which the page's Content-Security-Policy forbids.
// init() fetches salient-web_bg.wasm beside salient-web.js; main() sees a window and mounts the UI.
import init from './salient-web.js';
await init();

// The worker loads the page's own wasm; its main() sees a worker scope and serves the engine.
import init from './salient-web.js';
await init();

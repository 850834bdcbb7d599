// Salient's service worker: cross-origin isolation on hosts that cannot send headers.
//
// The multi-threaded engine needs SharedArrayBuffer, which a page only gets when its responses
// carry Cross-Origin-Opener-Policy: same-origin and Cross-Origin-Embedder-Policy: require-corp.
// Static hosts such as GitHub Pages cannot send them. Registered by boot.js, this worker passes
// the site's own responses through with those two headers added, so from the second visit on the
// page is isolated and runs on every core. It caches nothing (every request still goes to the
// network, as without it), so a new release replaces it by changing VERSION and nothing can go
// stale. Requests to other origins (models loaded by URL) are not touched.
const VERSION = 'salient-sw-1';

self.addEventListener('install', () => self.skipWaiting());
self.addEventListener('activate', (event) => event.waitUntil(self.clients.claim()));

self.addEventListener('fetch', (event) => {
  const request = event.request;
  if (new URL(request.url).origin !== self.location.origin) return;
  // A cache-only request the network cannot answer from another context (Chromium's quirk).
  if (request.cache === 'only-if-cached' && request.mode !== 'same-origin') return;
  event.respondWith((async () => {
    const response = await fetch(request);
    // Opaque and error responses pass as they are.
    if (response.status === 0 || response.type === 'opaque') return response;
    const headers = new Headers(response.headers);
    headers.set('Cross-Origin-Opener-Policy', 'same-origin');
    headers.set('Cross-Origin-Embedder-Policy', 'require-corp');
    headers.set('X-Salient-Service-Worker', VERSION);
    return new Response(response.body, { status: response.status, statusText: response.statusText, headers });
  })());
});

// The brigade app's service worker: makes the page installable and opens it without a network
// (the shell comes from the cache; the API never does: it is always the live truth).
const SHELL = 'brigada-shell-v1';
const FILES = ['/brigada/', '/brigada/app.js', '/brigada/app.css', '/brigada/manifest.webmanifest', '/brigada/icon.svg'];

self.addEventListener('install', (event) => {
  event.waitUntil(caches.open(SHELL).then((cache) => cache.addAll(FILES)).then(() => self.skipWaiting()));
});

self.addEventListener('activate', (event) => {
  event.waitUntil(caches.keys()
    .then((keys) => Promise.all(keys.filter((k) => k !== SHELL).map((k) => caches.delete(k))))
    .then(() => self.clients.claim()));
});

self.addEventListener('fetch', (event) => {
  const url = new URL(event.request.url);
  // Map tiles come from another origin (CENTINELA_MAP_TILES): the browser fetches them itself
  // (the worker's own fetches may reach the node only), and they are never cached here.
  if (url.origin !== self.location.origin) return;
  if (event.request.method !== 'GET' || url.pathname.startsWith('/brigada/api/')) return;
  // Network first (a node upgrade must not leave an officer on an old page), cache when offline.
  event.respondWith(fetch(event.request)
    .then((response) => {
      const copy = response.clone();
      caches.open(SHELL).then((cache) => cache.put(event.request, copy));
      return response;
    })
    .catch(() => caches.match(event.request)));
});

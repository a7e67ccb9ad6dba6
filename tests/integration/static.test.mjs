// The built web client served by chatd: content types, caching, compression, ETags, SPA routes,
// and that API paths keep their JSON errors.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { startChatd, stopAll, makeTempDir } from './lib/chatd.mjs';

after(stopAll);

function fakeDist() {
  const dir = makeTempDir('chatd-web-');
  fs.mkdirSync(path.join(dir, 'assets'));
  fs.writeFileSync(path.join(dir, 'index.html'),
    `<!doctype html><html><head><title>chatd</title><script type="module" src="/assets/app-3f2a1b.js"></script></head><body>${'<div></div>'.repeat(100)}</body></html>`);
  fs.writeFileSync(path.join(dir, 'assets', 'app-3f2a1b.js'), 'export const x = 1;\n'.repeat(500));
  fs.writeFileSync(path.join(dir, 'assets', 'logo-99aa.png'), Buffer.from('89504e470d0a1a0a0000000d49484452', 'hex'));
  fs.writeFileSync(path.join(dir, 'favicon.svg'), '<svg xmlns="http://www.w3.org/2000/svg"></svg>');
  return dir;
}

test('serves the web client with the right caching, compression and SPA fallback', async () => {
  const dist = fakeDist();
  const s = await startChatd({ args: ['--web-dir', dist] });
  const index = fs.readFileSync(path.join(dist, 'index.html'), 'utf8');

  const root = await fetch(`${s.url}/`, { headers: { 'accept-encoding': 'identity' } });
  assert.equal(root.status, 200);
  assert.match(root.headers.get('content-type'), /^text\/html/);
  assert.equal(root.headers.get('cache-control'), 'no-cache');
  assert.equal(await root.text(), index);

  // Client-side routes get the app shell; API paths never do.
  for (const route of ['/chat', '/chat/6b09c9464f545aa8f84964db', '/user/login', '/user/profile/settings']) {
    const r = await fetch(`${s.url}${route}`);
    assert.equal(r.status, 200, route);
    assert.equal(await r.text(), index, route);
  }
  const api = await fetch(`${s.url}/api/nope`);
  assert.equal(api.status, 404);
  assert.equal((await api.json()).success, false);
  assert.equal((await fetch(`${s.url}/assets/missing-123.js`)).status, 404);

  // Hashed assets: immutable for a year, compressed when the client accepts it.
  const raw = await new Promise((resolve, reject) => {
    import('node:http').then(({ default: http }) => {
      http.get(`${s.url}/assets/app-3f2a1b.js`, { headers: { 'accept-encoding': 'gzip' } }, (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => resolve({ res, body: Buffer.concat(chunks) }));
      }).on('error', reject);
    });
  });
  assert.equal(raw.res.statusCode, 200);
  assert.equal(raw.res.headers['cache-control'], 'public, max-age=31536000, immutable');
  assert.match(raw.res.headers['content-type'], /^text\/javascript/);
  assert.equal(raw.res.headers['content-encoding'], 'gzip');
  assert.equal(zlib.gunzipSync(raw.body).toString(), fs.readFileSync(path.join(dist, 'assets', 'app-3f2a1b.js'), 'utf8'));

  const png = await fetch(`${s.url}/assets/logo-99aa.png`);
  assert.equal(png.headers.get('content-type'), 'image/png');
  const svg = await fetch(`${s.url}/favicon.svg`);
  assert.equal(svg.headers.get('content-type'), 'image/svg+xml');
  assert.equal(svg.headers.get('cache-control'), 'public, max-age=3600');

  // Conditional requests.
  const etag = root.headers.get('etag');
  assert.ok(etag);
  const again = await fetch(`${s.url}/`, { headers: { 'if-none-match': etag } });
  assert.equal(again.status, 304);
});

test('without a built client chatd still serves the API and says why', async () => {
  const s = await startChatd({ args: ['--web-dir', path.join(makeTempDir('chatd-noweb-'), 'dist')] });
  assert.equal((await fetch(`${s.url}/healthz`)).status, 200);
  const r = await fetch(`${s.url}/chat`);
  assert.equal(r.status, 404);
  assert.match(s.output(), /index\.html missing/);
});

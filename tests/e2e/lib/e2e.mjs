// Harness of the end-to-end suite: a real chatd serving the built web client (started through the
// integration suite's harness, tests/integration/lib/chatd.mjs) and Debian's Chromium driven by
// playwright-core. Browsers are never downloaded: CHROMIUM (default /usr/bin/chromium) is used.
//
// Environment:
//   CHATD_BIN           chatd binary (default /work/main/build/bin/chatd)
//   WEB_DIST            built client (default <repo>/web/dist; scripts/build-web.sh builds it)
//   CHROMIUM            browser executable (default /usr/bin/chromium)
//   E2E_SCREENSHOT_DIR  where screenshots go (default <tmpdir>/chatd-e2e-screenshots; printed)
import { existsSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { deflateSync } from 'node:zlib';
import { chromium } from 'playwright-core';
import { startChatd } from '../../integration/lib/chatd.mjs';

export { CHATD_BIN, Client, signupUser, stopAll, uniqueEmail } from '../../integration/lib/chatd.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
export const REPO_ROOT = path.resolve(here, '../../..');
export const WEB_DIST = process.env.WEB_DIST || path.join(REPO_ROOT, 'web', 'dist');
export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

/** Default wait for an element or a condition (ms); real waits are far shorter. */
export const WAIT_MS = 15000;

// ---------------------------------------------------------------------------------------------
// Screenshots

let shot_dir = null;

/** The run's screenshot directory (created once; its path is printed). */
export function screenshotDir() {
  if (shot_dir) return shot_dir;
  // Every test file runs in its own process: a fixed default keeps one run's pictures together.
  shot_dir = process.env.E2E_SCREENSHOT_DIR || path.join(tmpdir(), 'chatd-e2e-screenshots');
  mkdirSync(shot_dir, { recursive: true });
  console.log(`# screenshots: ${shot_dir}`);
  return shot_dir;
}

/** Saves a screenshot of `page` as <dir>/<name>.png once fonts and visible images have loaded. */
export async function screenshot(page, name) {
  await page.evaluate(() => document.fonts.ready);
  // Images are lazy: wait for those in the viewport (the others are not in the picture anyway).
  await page.waitForFunction(
    () =>
      [...document.images].every((img) => {
        const r = img.getBoundingClientRect();
        const onScreen = r.width > 0 && r.bottom > 0 && r.top < innerHeight && r.right > 0 && r.left < innerWidth;
        return !onScreen || (img.complete && img.naturalWidth > 0);
      }),
    null,
    { timeout: WAIT_MS },
  );
  const file = path.join(screenshotDir(), `${name}.png`);
  await page.screenshot({ path: file, animations: 'disabled', caret: 'hide' });
  return file;
}

// ---------------------------------------------------------------------------------------------
// chatd

/**
 * Starts chatd serving WEB_DIST with every rate limit off. `port` and `dataDir` restart a server
 * on the address and data of a previous one (chatd.mjs always passes the same JWT secret, so
 * sessions survive the restart).
 */
export async function startServer({ port, dataDir } = {}) {
  if (!existsSync(path.join(WEB_DIST, 'index.html'))) {
    throw new Error(`${WEB_DIST}/index.html is missing: build the web client first (scripts/build-web.sh)`);
  }
  const args = ['--web-dir', WEB_DIST, '--rate-limit-messages', 'off'];
  if (port) args.push('--port', String(port));
  return startChatd({ dataDir, args });
}

// ---------------------------------------------------------------------------------------------
// Browser

/**
 * Launches headless Chromium. playwright-core gives every launched browser a fresh temporary
 * profile (its own --user-data-dir, removed on close) and refuses a --user-data-dir argument.
 */
export async function launchBrowser() {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} not found (Debian package chromium, scripts/install-deps.sh)`);
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--disable-dev-shm-usage',
    ],
  });
}

/**
 * A fresh browser context (its own cookies and storage: one user) with one page. The page records
 * uncaught exceptions (`pageErrors`), console errors (`consoleErrors`) and dialogs (`dialogs`,
 * dismissed), so tests can assert that nothing blew up and no script was injected.
 */
export async function openUser(browser, baseUrl, tag, { viewport = { width: 1280, height: 800 }, storageState } = {}) {
  const context = await browser.newContext({ baseURL: baseUrl, viewport, storageState, colorScheme: 'light' });
  context.setDefaultTimeout(WAIT_MS);
  const page = await context.newPage();
  const user = { tag, context, page, pageErrors: [], consoleErrors: [], dialogs: [] };
  page.on('pageerror', (e) => user.pageErrors.push(e.message));
  page.on('console', (m) => {
    if (m.type() === 'error') user.consoleErrors.push(m.text());
  });
  page.on('dialog', (d) => {
    user.dialogs.push(`${d.type()}: ${d.message()}`);
    d.dismiss().catch(() => {});
  });
  return user;
}

/** `[data-testid="<id>"]` */
export const tid = (id) => `[data-testid="${id}"]`;

/** The sidebar entry of a user. */
export const userItem = (id) => `${tid('user-item')}[data-user-id="${id}"]`;

/** The signed-in user as the server sees this page's cookie (null when signed out). */
export async function whoAmI(page) {
  return page.evaluate(async () => {
    const r = await fetch('/api/v1/auth/get-user', { credentials: 'include' });
    if (!r.ok) return null;
    return (await r.json()).user;
  });
}

/** Fills and submits the signup form (the page must show it); returns the new user. */
export async function signupThroughUi(page, { name, email, password }) {
  await page.locator(tid('signup-form')).waitFor();
  await page.fill(tid('signup-name'), name);
  await page.fill(tid('signup-email'), email);
  await page.fill(tid('signup-password'), password);
  await page.click(tid('signup-submit'));
  await page.waitForURL('**/chat');
  await page.locator(tid('sidebar')).waitFor();
  return whoAmI(page);
}

/** Fills and submits the login form (the page must show it). */
export async function loginThroughUi(page, { email, password }) {
  await page.locator(tid('login-form')).waitFor();
  await page.fill(tid('login-email'), email);
  await page.fill(tid('login-password'), password);
  await page.click(tid('login-submit'));
}

/** Waits until the page's socket is connected: no reconnect banner and an enabled composer. */
export async function waitConnected(page) {
  await page.waitForFunction(
    () => {
      if (document.querySelector('[data-testid="reconnect-banner"]')) return false;
      const input = document.querySelector('[data-testid="composer-input"]');
      return !input || !input.disabled;
    },
    null,
    { timeout: WAIT_MS },
  );
}

/**
 * Starts recording, in the page, every `data-status` each own message bubble goes through
 * (keyed by its text). Read them back with ownStatusHistory().
 */
export async function recordOwnStatuses(page) {
  await page.evaluate(() => {
    const seen = (window.__e2eStatuses = window.__e2eStatuses || {});
    const note = (el) => {
      if (!(el instanceof Element) || el.dataset.testid !== 'message' || el.dataset.own !== 'true') return;
      const key = el.querySelector('[data-testid="message-text"]')?.textContent ?? `#${el.dataset.clientMsgId}`;
      const list = (seen[key] = seen[key] || []);
      if (list.at(-1) !== el.dataset.status) list.push(el.dataset.status);
    };
    document.querySelectorAll('[data-testid="message"]').forEach(note);
    new MutationObserver((records) => {
      for (const r of records) {
        if (r.type === 'attributes') note(r.target);
        for (const n of r.addedNodes || []) {
          if (!(n instanceof Element)) continue;
          note(n);
          n.querySelectorAll?.('[data-testid="message"]').forEach(note);
        }
      }
    }).observe(document.body, { subtree: true, childList: true, attributes: true, attributeFilter: ['data-status'] });
  });
}

/** The statuses recorded by recordOwnStatuses() for the own message with this text. */
export function ownStatusHistory(page, text) {
  return page.evaluate((t) => (window.__e2eStatuses || {})[t] || [], text);
}

/** Text contents of the message bubbles' text parts, in display order. */
export function messageTexts(page) {
  return page.$$eval(`${tid('message-list')} ${tid('message-text')}`, (els) => els.map((e) => e.textContent));
}

/** Waits until a message bubble whose text is exactly `text` is shown; returns its locator. */
export async function waitForMessage(page, text, { own } = {}) {
  let sel = tid('message');
  if (own !== undefined) sel += `[data-own="${own}"]`;
  const bubble = page
    .locator(sel)
    .filter({ has: page.locator(tid('message-text')).getByText(text, { exact: true }) });
  await bubble.first().waitFor();
  return bubble;
}

// ---------------------------------------------------------------------------------------------
// Images

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(buf) {
  let c = 0xffffffff;
  for (const b of buf) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type, data) {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const td = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(td));
  return Buffer.concat([len, td, crc]);
}

/**
 * A real RGB PNG of `size`×`size` pixels painted by `paint(x, y) → [r, g, b]` (browsers decode
 * it, so a rendered <img> has a natural size).
 */
export function makePng(size, paint) {
  const raw = Buffer.alloc((size * 3 + 1) * size);
  let o = 0;
  for (let y = 0; y < size; y++) {
    raw[o++] = 0; // filter: none
    for (let x = 0; x < size; x++) {
      const [r, g, b] = paint(x, y);
      raw[o++] = r;
      raw[o++] = g;
      raw[o++] = b;
    }
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(size, 0);
  ihdr.writeUInt32BE(size, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // colour type: RGB
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(raw)),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

/** A colourful test picture: a diagonal gradient with a disc (for the image message). */
export function picturePng(size = 96) {
  return makePng(size, (x, y) => {
    const d = Math.hypot(x - size * 0.62, y - size * 0.4);
    if (d < size * 0.18) return [255, 214, 64];
    const t = (x + y) / (2 * size);
    return [Math.round(40 + 60 * t), Math.round(110 + 90 * (1 - t)), Math.round(200 + 50 * t)];
  });
}

/** An avatar-like picture: a face-ish disc on a warm background. */
export function avatarPng(size = 128) {
  return makePng(size, (x, y) => {
    const c = size / 2;
    const d = Math.hypot(x - c, y - c * 1.05);
    const eye = Math.hypot(Math.abs(x - c) - size * 0.13, y - c * 0.85) < size * 0.045;
    if (eye) return [40, 30, 60];
    if (d < size * 0.32) return [252, 205, 160];
    return [Math.round(230 - (40 * y) / size), Math.round(120 + (50 * x) / size), 150];
  });
}

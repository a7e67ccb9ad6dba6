// End-to-end: the server goes away and comes back (same port, same data). The client shows the
// reconnect banner and disables the composer while the socket is down, and after it reconnects
// the message the other user sent in the meantime (through REST) is on screen without a reload.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  launchBrowser,
  loginThroughUi,
  messageTexts,
  openUser,
  screenshot,
  signupUser,
  startServer,
  stopAll,
  tid,
  userItem,
  waitConnected,
  waitForMessage,
  whoAmI,
} from './lib/e2e.mjs';

describe('web client: the server restarts', { timeout: 180000 }, () => {
  let server;
  let browser;
  let carol; // browser user; .account = {client, user, email, password} from signupUser
  let dave;

  before(async () => {
    server = await startServer();
    browser = await launchBrowser();
    carol = await openUser(browser, server.url, 'carol');
    dave = await openUser(browser, server.url, 'dave');
    carol.account = await signupUser(server.url, { full_name: 'Carol Danvers' });
    dave.account = await signupUser(server.url, { full_name: 'Dave Lister' });
  });

  after(async () => {
    await browser?.close();
    const code = await server?.stop();
    await stopAll();
    assert.equal(code, 0, 'chatd exits cleanly on SIGTERM');
  });

  test('a deep link while signed out goes through login and back to the conversation', async () => {
    const daveId = dave.account.user._id;
    await carol.page.goto(`/chat/${daveId}`);
    await carol.page.waitForURL('**/user/login');
    // A wrong password shows an error and keeps the visitor on the login page.
    await loginThroughUi(carol.page, { email: carol.account.email, password: 'not-the-password' });
    await carol.page.locator(tid('login-error')).waitFor();
    assert.ok(carol.page.url().endsWith('/user/login'));
    await loginThroughUi(carol.page, { email: carol.account.email, password: carol.account.password });
    await carol.page.waitForURL(`**/chat/${daveId}`);
    await carol.page.locator(`${tid('conversation')}[data-peer-id="${daveId}"]`).waitFor();

    await dave.page.goto('/user/login');
    await loginThroughUi(dave.page, { email: dave.account.email, password: dave.account.password });
    await dave.page.waitForURL('**/chat');
    await dave.page.click(userItem(carol.account.user._id));
    await dave.page.locator(`${tid('conversation')}[data-peer-id="${carol.account.user._id}"]`).waitFor();

    await waitConnected(carol.page);
    await waitConnected(dave.page);
    await carol.page.locator(`${tid('peer-status')}[data-online="true"]`).waitFor();
    await carol.page.fill(tid('composer-input'), 'Before the outage');
    await carol.page.keyboard.press('Enter');
    await waitForMessage(dave.page, 'Before the outage', { own: false });
  });

  test('the banner shows while chatd is down; a message sent meanwhile appears without reload', async () => {
    const c = carol.page;
    const d = dave.page;
    // A marker that a reload would wipe: the page must never be reloaded below.
    await c.evaluate(() => (window.__e2eNoReload = true));
    assert.equal(await c.locator(tid('reconnect-banner')).count(), 0);

    const { port, dataDir } = server;
    assert.equal(await server.stop(), 0, 'chatd stops cleanly');
    await c.locator(tid('reconnect-banner')).waitFor();
    await d.locator(tid('reconnect-banner')).waitFor();
    assert.equal(await c.isDisabled(tid('composer-input')), true, 'the composer is disabled while offline');
    await screenshot(c, 'reconnecting');

    // Carol's browser stays cut off until Dave's message is stored, so it can only reach her
    // through the reconnect path (a new session: the client refetches what is on screen).
    await carol.context.setOffline(true);
    server = await startServer({ port, dataDir });
    assert.equal(server.port, port, 'restarted on the same port');
    await d.locator(tid('reconnect-banner')).waitFor({ state: 'detached' });
    await waitConnected(d);

    const text = 'Sent through REST while you were away';
    const r = await dave.account.client.post(`/api/messages/send/${carol.account.user._id}`, { text });
    assert.ok(r.status === 200 || r.status === 201, `REST send: ${r.status} ${r.text}`);
    // Dave's own page gets it too (a REST send is delivered to every socket of the sender).
    await waitForMessage(d, text, { own: true });
    assert.equal(await c.locator(tid('reconnect-banner')).count(), 1, 'Carol is still disconnected');
    assert.equal(await c.locator(tid('message-text')).getByText(text).count(), 0);

    await carol.context.setOffline(false);
    await c.locator(tid('reconnect-banner')).waitFor({ state: 'detached' });
    await waitConnected(c);
    await waitForMessage(c, text, { own: false });
    assert.equal(await c.evaluate(() => window.__e2eNoReload), true, 'the page was not reloaded');
    assert.deepEqual(await messageTexts(c), ['Before the outage', text]);

    // Live both ways again, and the session survived the restart.
    await c.fill(tid('composer-input'), 'Back online!');
    await c.keyboard.press('Enter');
    await c.locator(`${tid('message')}[data-status="sent"]`).filter({ hasText: 'Back online!' }).waitFor();
    await waitForMessage(d, 'Back online!', { own: false });
    const live = 'And this one is live';
    const r2 = await dave.account.client.post(`/api/messages/send/${carol.account.user._id}`, { text: live });
    assert.ok(r2.status === 200 || r2.status === 201, `REST send: ${r2.status} ${r2.text}`);
    await waitForMessage(c, live, { own: false });
    assert.equal((await whoAmI(c))?._id, carol.account.user._id);
    assert.equal(await c.evaluate(() => window.__e2eNoReload), true, 'the page was not reloaded');
  });

  test('no uncaught errors in either page', () => {
    assert.deepEqual(carol.pageErrors, []);
    assert.deepEqual(dave.pageErrors, []);
  });
});

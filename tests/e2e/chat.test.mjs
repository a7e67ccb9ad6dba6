// End-to-end: two people use the web client served by a real chatd, each in their own browser
// context (cookies and storage apart). The steps build on each other (one conversation), so they
// run in order; each waits for what a user would see, never for a fixed time.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  avatarPng,
  launchBrowser,
  messageTexts,
  openUser,
  ownStatusHistory,
  picturePng,
  recordOwnStatuses,
  screenshot,
  signupThroughUi,
  startServer,
  stopAll,
  tid,
  userItem,
  waitConnected,
  waitForMessage,
  whoAmI,
} from './lib/e2e.mjs';

const PASSWORD = 'correct horse battery';

describe('web client: two users chatting', { timeout: 180000 }, () => {
  let server;
  let browser;
  let alice; // {page, context, ...} from openUser, plus .user (the server's user object)
  let bob;
  // Every run has a fresh data directory, so fixed addresses are free (and read well in the
  // screenshots).
  const aliceEmail = 'alice@wonderland.example';
  const bobEmail = 'bob@builder.example';

  before(async () => {
    server = await startServer();
    browser = await launchBrowser();
    alice = await openUser(browser, server.url, 'alice');
    bob = await openUser(browser, server.url, 'bob');
  });

  after(async () => {
    for (const u of [alice, bob]) {
      // 401s are the signed-out session checks; anything else is worth a look.
      const other = (u?.consoleErrors || []).filter((e) => !e.includes('status of 401'));
      if (other.length) console.log(`# ${u.tag} console errors:\n#   ${other.join('\n#   ')}`);
    }
    await browser?.close();
    const code = await server?.stop();
    await stopAll();
    assert.equal(code, 0, 'chatd exits cleanly on SIGTERM');
  });

  test('signed-out visitors see the landing page, and protected routes send them to login', async () => {
    const { page } = alice;
    await page.goto('/');
    await page.locator(tid('landing-get-started')).waitFor();
    assert.equal(await page.locator(tid('landing-login')).count(), 1);
    await screenshot(page, 'landing');

    for (const route of ['/chat', '/chat/0123456789abcdef01234567', '/user/profile', '/user/profile/settings']) {
      await page.goto(route);
      await page.waitForURL('**/user/login');
      await page.locator(tid('login-form')).waitFor();
    }
    await screenshot(page, 'login');
    assert.equal(await whoAmI(page), null);
  });

  test('both sign up through the UI and land in the chat', async () => {
    // Alice goes from the login page to signup through the link; Bob opens signup directly.
    await alice.page.click(tid('go-signup'));
    await alice.page.waitForURL('**/user/signup');
    await alice.page.fill(tid('signup-name'), 'Alice Liddell');
    await alice.page.fill(tid('signup-email'), aliceEmail);
    await alice.page.fill(tid('signup-password'), PASSWORD);
    await screenshot(alice.page, 'signup');
    await alice.page.click(tid('signup-submit'));
    await alice.page.waitForURL('**/chat');
    alice.user = await whoAmI(alice.page);
    assert.equal(alice.user?.full_name, 'Alice Liddell');
    assert.equal(alice.user.email, aliceEmail);

    await bob.page.goto('/user/signup');
    bob.user = await signupThroughUi(bob.page, { name: 'Bob Builder', email: bobEmail, password: PASSWORD });
    assert.equal(bob.user?.full_name, 'Bob Builder');
    assert.notEqual(bob.user._id, alice.user._id);

    assert.equal(await alice.page.textContent(tid('current-user-name')), 'Alice Liddell');
    assert.equal(await bob.page.textContent(tid('current-user-name')), 'Bob Builder');
    // A signed-in user visiting login is sent to the chat.
    await bob.page.goto('/user/login');
    await bob.page.waitForURL('**/chat');
    await bob.page.locator(tid('sidebar')).waitFor();
    await bob.page.locator(tid('no-conversation')).waitFor();
  });

  test('each sees the other online in the sidebar', async () => {
    // Alice's list was loaded before Bob existed: it is refetched when the window gets focus.
    await alice.page.evaluate(() => window.dispatchEvent(new Event('focus')));
    await alice.page.locator(`${userItem(bob.user._id)} ${tid('online-dot')}[data-online="true"]`).waitFor();
    await bob.page.locator(`${userItem(alice.user._id)} ${tid('online-dot')}[data-online="true"]`).waitFor();
    assert.equal(await alice.page.textContent(`${userItem(bob.user._id)} ${tid('user-item-name')}`), 'Bob Builder');
    assert.equal(await bob.page.textContent(`${userItem(alice.user._id)} ${tid('user-item-name')}`), 'Alice Liddell');
    // Nobody lists themselves.
    assert.equal(await alice.page.locator(userItem(alice.user._id)).count(), 0);
  });

  test('messages go live both ways; the sender sees pending then sent; unread counts add up', async () => {
    const a = alice.page;
    const b = bob.page;
    await a.click(userItem(bob.user._id));
    await a.waitForURL(`**/chat/${bob.user._id}`);
    await a.locator(`${tid('conversation')}[data-peer-id="${bob.user._id}"]`).waitFor();
    await a.locator(tid('conversation-empty')).waitFor();
    assert.equal(await a.textContent(tid('peer-name')), 'Bob Builder');
    await a.locator(`${tid('peer-status')}[data-online="true"]`).waitFor();
    await waitConnected(a);
    await recordOwnStatuses(a);

    const first = 'Hi Bob! Are you coming to the tea party?';
    await a.fill(tid('composer-input'), first);
    await a.keyboard.press('Enter');
    const mine = await waitForMessage(a, first, { own: true });
    await a.locator(`${tid('message')}[data-status="sent"]`).filter({ hasText: first }).waitFor();
    assert.deepEqual(await ownStatusHistory(a, first), ['pending', 'sent'], 'optimistic bubble, then acked');
    assert.match(await mine.getAttribute('data-message-id'), /^[0-9a-f]{24}$/);
    assert.equal(await a.inputValue(tid('composer-input')), '', 'the composer is cleared');

    // Shift+Enter adds a line; Enter sends both lines as one message.
    await a.locator(tid('composer-input')).pressSequentially('It starts at six.');
    await a.keyboard.press('Shift+Enter');
    await a.locator(tid('composer-input')).pressSequentially('Bring the March Hare.');
    await a.keyboard.press('Enter');
    const second = 'It starts at six.\nBring the March Hare.';
    await a.locator(`${tid('message')}[data-status="sent"]`).filter({ hasText: 'Bring the March Hare.' }).waitFor();
    assert.deepEqual(await ownStatusHistory(a, second), ['pending', 'sent']);
    // Not read yet: a single tick on the last own message.
    await a.locator(`${tid('message')}[data-own="true"] ${tid('tick-sent')}`).waitFor();
    assert.equal(await a.locator(`${tid('message')}[data-read="true"]`).count(), 0);

    // Bob has no conversation open: both arrive live as unread, with a preview.
    const aliceItem = userItem(alice.user._id);
    await b.locator(`${aliceItem} ${tid('unread-badge')}`).filter({ hasText: /^2$/ }).waitFor();
    await b.locator(`${aliceItem} ${tid('last-message-preview')}`).filter({ hasText: 'Bring the March Hare.' }).waitFor();
    await b.locator(tid('nav-unread-total')).filter({ hasText: /^2$/ }).waitFor();
    await screenshot(b, 'unread');

    // Bob opens the conversation: both messages, badge gone, and Alice's ticks turn to read.
    await b.click(aliceItem);
    await b.waitForURL(`**/chat/${alice.user._id}`);
    await waitForMessage(b, first, { own: false });
    await waitForMessage(b, second, { own: false });
    assert.deepEqual(await messageTexts(b), [first, second]);
    await b.locator(`${aliceItem} ${tid('unread-badge')}`).waitFor({ state: 'detached' });
    await b.locator(tid('nav-unread-total')).waitFor({ state: 'detached' });
    await a.locator(`${tid('message')}[data-own="true"][data-read="true"] ${tid('tick-read')}`).waitFor();
    assert.equal(await a.locator(`${tid('message')}[data-own="true"][data-read="false"]`).count(), 0, 'every message read');

    // Bob answers; Alice has the conversation open and gets it without a reload.
    await waitConnected(b);
    await recordOwnStatuses(b);
    const reply = 'Of course! I will bring the butter.';
    await b.fill(tid('composer-input'), reply);
    await b.click(tid('send-button'));
    await waitForMessage(a, reply, { own: false });
    await b.locator(`${tid('message')}[data-status="sent"]`).filter({ hasText: reply }).waitFor();
    assert.deepEqual(await ownStatusHistory(b, reply), ['pending', 'sent']);
    assert.deepEqual(await messageTexts(a), [first, second, reply]);
    // Alice is looking at it: no unread badge for Bob on her side.
    assert.equal(await a.locator(`${userItem(bob.user._id)} ${tid('unread-badge')}`).count(), 0);
  });

  test('the peer sees "typing…" while someone types, and it goes away when they send', async () => {
    const a = alice.page;
    const b = bob.page;
    assert.equal(await a.locator(tid('typing-indicator')).count(), 0);
    await b.locator(tid('composer-input')).pressSequentially('Shall I bring ', { delay: 40 });
    await a.locator(tid('typing-indicator')).waitFor();
    assert.equal(await a.locator(tid('peer-status')).count(), 0, 'typing replaces the online status');
    await a.locator(`${tid('message-list')} ${tid('typing-bubble')}`).waitFor();
    await a.locator(`${userItem(bob.user._id)} ${tid('sidebar-typing')}`).waitFor();
    await screenshot(a, 'typing');
    await b.locator(tid('composer-input')).pressSequentially('jam too?', { delay: 20 });
    await b.keyboard.press('Enter');
    await waitForMessage(a, 'Shall I bring jam too?', { own: false });
    await a.locator(tid('typing-indicator')).waitFor({ state: 'detached' });
    await a.locator(tid('typing-bubble')).waitFor({ state: 'detached' });
    await a.locator(`${tid('peer-status')}[data-online="true"]`).waitFor();
  });

  test('an image message arrives and renders', async () => {
    const a = alice.page;
    const b = bob.page;
    const png = picturePng(96);
    await b.setInputFiles(tid('image-input'), { name: 'garden.png', mimeType: 'image/png', buffer: png });
    await b.locator(tid('image-preview')).waitFor();
    await b.fill(tid('composer-input'), 'The garden this morning');
    await b.click(tid('send-button'));
    await b.locator(tid('image-preview')).waitFor({ state: 'detached' });

    const bubble = await waitForMessage(a, 'The garden this morning', { own: false });
    const img = bubble.locator(tid('message-image'));
    await img.waitFor();
    await a.waitForFunction(
      (el) => el.complete && el.naturalWidth > 0,
      await img.elementHandle(),
    );
    assert.equal(await img.evaluate((el) => el.naturalWidth), 96, 'the picture is decoded at its size');
    // The sender's own copy is acked and shows the picture too.
    const own = b.locator(`${tid('message')}[data-own="true"][data-status="sent"]`).filter({ has: b.locator(tid('message-image')) });
    await own.waitFor();

    // Click to enlarge (a modal <dialog> with the same picture), then close it.
    await img.click();
    const modal = a.locator(`${tid('image-modal')}[open]`);
    await modal.waitFor();
    assert.equal(await modal.locator('img').getAttribute('src'), await img.getAttribute('src'));
    await a.click(tid('image-modal-close'));
    await modal.waitFor({ state: 'detached' });

    const a2 = 'Lovely! See you at six.';
    await a.fill(tid('composer-input'), a2);
    await a.keyboard.press('Enter');
    await waitForMessage(b, a2, { own: false });
    await a.locator(`${tid('message')}[data-read="true"]`).filter({ hasText: a2 }).waitFor();
    await screenshot(a, 'chat');
  });

  test('history and the session survive a reload', async () => {
    const a = alice.page;
    const before = await messageTexts(a);
    const beforeIds = await a.$$eval(tid('message'), (els) => els.map((e) => e.dataset.messageId));
    assert.equal(before.length, 6);
    await a.reload();
    await a.locator(tid('conversation')).waitFor();
    assert.ok(a.url().endsWith(`/chat/${bob.user._id}`), `still in the conversation: ${a.url()}`);
    assert.equal(await a.textContent(tid('current-user-name')), 'Alice Liddell', 'still signed in');
    await waitForMessage(a, 'Lovely! See you at six.', { own: true });
    assert.deepEqual(await messageTexts(a), before);
    assert.deepEqual(await a.$$eval(tid('message'), (els) => els.map((e) => e.dataset.messageId)), beforeIds);
    const img = a.locator(tid('message-image'));
    await a.waitForFunction((el) => el.complete && el.naturalWidth > 0, await img.elementHandle());
    // Read state survives too: all of Alice's messages were read by Bob.
    assert.equal(await a.locator(`${tid('message')}[data-own="true"][data-read="false"]`).count(), 0);
    await waitConnected(a);
  });

  test('a phone-width window shows the list, then one conversation with a back button', async () => {
    const phone = await openUser(browser, server.url, 'alice-phone', {
      viewport: { width: 390, height: 780 },
      storageState: await alice.context.storageState(),
    });
    try {
      const p = phone.page;
      await p.goto('/chat');
      await p.locator(userItem(bob.user._id)).waitFor();
      assert.equal(await p.locator(tid('no-conversation')).isVisible(), false, 'no empty right pane on a phone');
      await screenshot(p, 'mobile-list');
      await p.click(userItem(bob.user._id));
      await waitForMessage(p, 'Lovely! See you at six.', { own: true });
      assert.equal(await p.locator(tid('sidebar')).isVisible(), false, 'the list is hidden in a conversation');
      await p.locator(tid('back-button')).waitFor();
      await screenshot(p, 'mobile-chat');
      await p.click(tid('back-button'));
      await p.waitForURL('**/chat');
      await p.locator(userItem(bob.user._id)).waitFor();
      assert.deepEqual(phone.pageErrors, []);
    } finally {
      await phone.context.close();
    }
  });

  test("a new profile picture shows in the other user's sidebar", async () => {
    const a = alice.page;
    const b = bob.page;
    // Bob sees Alice's initials (no picture yet).
    const aliceAvatar = b.locator(`${userItem(alice.user._id)} img`);
    assert.equal(await aliceAvatar.count(), 0);

    await a.click(tid('nav-profile'));
    await a.waitForURL('**/user/profile');
    await a.locator(tid('profile-form')).waitFor();
    assert.equal(await a.inputValue(tid('profile-name')), 'Alice Liddell');
    assert.equal((await a.textContent(tid('profile-email'))).trim(), aliceEmail);
    assert.match(await a.textContent(tid('profile-member-since')), /\d{4}/);
    assert.equal(await a.isDisabled(tid('profile-save')), true, 'nothing to save yet');

    await a.setInputFiles(tid('profile-avatar-input'), { name: 'me.png', mimeType: 'image/png', buffer: avatarPng(128) });
    await a.locator(`${tid('profile-avatar-preview')}[data-changed="true"]`).waitFor();
    await a.fill(tid('profile-bio'), 'Curiouser and curiouser.');
    await a.click(tid('profile-save'));
    await a.locator(tid('profile-success')).waitFor();
    await a.locator(`${tid('profile-avatar-preview')}[data-changed="false"] img`).waitFor();
    await screenshot(a, 'profile');
    const saved = await whoAmI(a);
    assert.ok(saved.profile_picture, 'the server has a picture');
    assert.equal(saved.bio, 'Curiouser and curiouser.');

    // Bob's list is refetched when his window gets focus: the picture appears without a reload,
    // in the sidebar and in the open conversation's header.
    await b.evaluate(() => window.dispatchEvent(new Event('focus')));
    await aliceAvatar.waitFor();
    await b.waitForFunction(
      (el) => el.complete && el.naturalWidth > 0,
      await aliceAvatar.elementHandle(),
    );
    const src = await aliceAvatar.getAttribute('src');
    assert.ok(src && (src === saved.profile_picture || src.endsWith(saved.profile_picture)), `avatar src ${src}`);
    // And it is still there after a reload.
    await b.reload();
    await b.locator(`${userItem(alice.user._id)} img`).waitFor();
    assert.equal(await b.locator(`${userItem(alice.user._id)} img`).getAttribute('src'), src);
    await b.locator(`${tid('conversation-header')} img[src="${src}"]`).waitFor();
    await waitForMessage(b, 'Lovely! See you at six.', { own: false });
    await screenshot(b, 'chat-peer');

    // The settings page: the theme picker applies a theme at once and keeps it across reloads.
    await a.click(tid('nav-settings'));
    await a.locator(tid('theme-option')).first().waitFor();
    await screenshot(a, 'settings');
    const theme = () => a.evaluate(() => document.documentElement.dataset.theme);
    await a.click(`${tid('theme-option')}[data-theme-name="dracula"]`);
    await a.locator(`${tid('theme-option')}[data-theme-name="dracula"][aria-pressed="true"]`).waitFor();
    assert.equal(await theme(), 'dracula');
    await a.reload();
    await a.locator(`${tid('theme-option')}[data-theme-name="dracula"][aria-pressed="true"]`).waitFor();
    assert.equal(await theme(), 'dracula');
    assert.notEqual(await b.evaluate(() => document.documentElement.dataset.theme), 'dracula', 'per device, not per account');
    await a.click(`${tid('theme-option')}[data-theme-name="chatd"]`);
    await a.locator(`${tid('theme-option')}[data-theme-name="chatd"][aria-pressed="true"]`).waitFor();
    assert.equal(await theme(), 'chatd');
  });

  test('text with HTML is shown literally, never injected', async () => {
    const a = alice.page;
    const b = bob.page;
    // Alice comes back from the settings page to the conversation (no reload).
    await a.click(tid('nav-chat'));
    await a.click(userItem(bob.user._id));
    await waitConnected(a);
    const evil = '<img src=x onerror=alert(1)> <b>bold?</b> <script>alert(2)</script>';
    await a.fill(tid('composer-input'), evil);
    await a.keyboard.press('Enter');
    const got = await waitForMessage(b, evil, { own: false });
    const text = got.locator(tid('message-text'));
    assert.equal(await text.textContent(), evil);
    assert.equal(await text.evaluate((el) => el.children.length), 0, 'no elements inside the text');
    for (const p of [a, b]) {
      assert.equal(await p.locator('img[src="x"], script:not([src])').count(), 0, 'nothing was injected');
    }
    // The last-message preview in the sidebar is text as well.
    const preview = a.locator(`${userItem(bob.user._id)} ${tid('last-message-preview')}`);
    await preview.filter({ hasText: 'onerror' }).waitFor();
    assert.equal(await preview.evaluate((el) => el.querySelector('img, b, script')), null);
    assert.deepEqual(alice.dialogs, []);
    assert.deepEqual(bob.dialogs, []);
  });

  test('logout returns to login; protected routes then redirect there', async () => {
    const a = alice.page;
    await a.click(tid('logout-button'));
    await a.waitForURL('**/user/login');
    await a.locator(tid('login-form')).waitFor();
    assert.equal(await whoAmI(a), null, 'the session cookie is gone');
    for (const route of ['/chat', `/chat/${bob.user._id}`, '/user/profile']) {
      await a.goto(route);
      await a.waitForURL('**/user/login');
      await a.locator(tid('login-form')).waitFor();
    }
    // Bob is unaffected, and sees Alice go offline.
    await bob.page.locator(`${userItem(alice.user._id)} ${tid('online-dot')}[data-online="false"]`).waitFor();
    assert.equal((await whoAmI(bob.page))?._id, bob.user._id);
  });

  test('no uncaught errors in either page', () => {
    assert.deepEqual(alice.pageErrors, []);
    assert.deepEqual(bob.pageErrors, []);
  });
});

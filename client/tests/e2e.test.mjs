// Browser end-to-end tests of the web client, in Debian's Chromium driven by
// playwright-core, against a freshly started openfloor server.
//
// Needs the debug binary (cargo build) and /usr/bin/chromium; scripts/test
// provides both. Screenshots go to test-artifacts/ at the repository root.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { DESKTOP, PHONE, artifacts, launchChromium, openPage, startServer } from './support.mjs';

let server;
let base;
let browser;

before(async () => {
  server = await startServer('e2e');
  base = server.base;
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  server?.stop();
});

/**
 * Creates an event through the home page, which goes on to its host page;
 * returns its links (the host's is that page's address).
 */
async function createEvent(title) {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(base);
  await page.getByLabel('Event title').fill(title);
  await page.getByRole('button', { name: 'Create event' }).click();
  await page.waitForURL(/\/host#/);
  await page.locator('#share[open]').waitFor();
  const guest = await page.locator('#guest-link').textContent();
  return { context, page, guest, host: page.url() };
}

/** A page that fails the test if any dialog (alert) opens. */
const guestPage = (url, options = PHONE) => openPage(browser, url, options);

async function ask(page, text) {
  await page.getByLabel('Your question').fill(text);
  await page.getByRole('button', { name: 'Ask' }).click();
}

const item = (page, list, text) => page.locator(`#${list} li`, { hasText: text });

test('a whole Q&A session: create, share, ask, vote, hide, answer, close', async () => {
  const home = await createEvent('Town hall');
  assert.match(home.guest, /\/event\/[0-9A-Z]{26}$/);
  assert.match(home.host, /\/event\/[0-9A-Z]{26}\/host#[0-9a-f]{40}$/);
  await home.page.locator('#qr').evaluate((img) => img.decode());
  assert.ok(await home.page.locator('#qr').evaluate((img) => img.naturalWidth >= 100), 'the QR code renders');
  assert.match(await home.page.locator('#share .warning').textContent(), /only key to the host view/);
  assert.equal(await home.page.evaluate(() => document.activeElement.id), 'share-summary', 'focus on what comes next');
  await home.page.screenshot({ path: join(artifacts, 'host-just-created.png'), fullPage: true });

  const host = await guestPage(home.host, DESKTOP);
  const guest = await guestPage(home.guest);
  await assertText(guest.page.locator('#title'), 'Town hall');

  await ask(guest.page, 'Will the slides be shared?');
  await ask(guest.page, 'What is the roadmap for next year?');
  await ask(guest.page, 'Can we talk about lunch?');
  // The asker's own vote counts: each starts at one, pressed.
  await assertText(item(guest.page, 'questions', 'roadmap').locator('.vote'), '1');

  // The host sees the question and its vote within two seconds.
  const started = Date.now();
  await item(host.page, 'questions', 'roadmap').locator('.vote .n', { hasText: '1' }).waitFor({ timeout: 2000 });
  assert.ok(Date.now() - started <= 2000);
  // The host is told how fresh the ranking is (by the server's clock); a
  // guest is not.
  assert.match(await host.page.locator('#board-age').textContent(), /^Ranking updated \d+\.\d s ago$/);
  assert.equal(await guest.page.locator('#board-age').isVisible(), false);
  // The guest's vote button says it was this browser that voted.
  assert.equal(await item(guest.page, 'questions', 'roadmap').getByRole('button', { name: /Upvote/, pressed: true }).getAttribute('aria-pressed'), 'true');

  // Hide: gone for the guest, flagged for the host.
  await item(host.page, 'questions', 'lunch').getByRole('button', { name: 'Hide' }).click();
  await item(guest.page, 'questions', 'lunch').waitFor({ state: 'detached', timeout: 3000 });
  await item(host.page, 'questions', 'lunch').getByText('hidden from guests').waitFor();

  // Answer: moves to the answered list on both pages.
  await item(host.page, 'questions', 'slides').getByRole('button', { name: 'Mark answered' }).click();
  await item(guest.page, 'answered', 'slides').waitFor({ timeout: 3000 });
  await item(host.page, 'answered', 'slides').waitFor({ timeout: 3000 });
  assert.equal(await item(guest.page, 'questions', 'slides').count(), 0);

  // The presenter screen, a page of its own, shows the top question large.
  const presenterUrl = await host.page.getByRole('link', { name: 'Open the presenter screen' }).getAttribute('href');
  const presenter = await guestPage(new URL(presenterUrl, base).href, { viewport: { width: 1280, height: 720 } });
  await assertText(presenter.page.locator('#now-text'), 'What is the roadmap for next year?');
  await presenter.page.screenshot({ path: join(artifacts, 'presenter.png') });
  await presenter.context.close();

  await guest.page.screenshot({ path: join(artifacts, 'guest-phone.png'), fullPage: true });
  await host.page.screenshot({ path: join(artifacts, 'host.png'), fullPage: true });

  // Closing disables asking on the guest page.
  await host.page.getByRole('button', { name: 'Close to new questions' }).click();
  await guest.page.locator('#closed-note').waitFor({ state: 'visible', timeout: 3000 });
  assert.equal(await guest.page.locator('#ask').isVisible(), false);
  await guest.page.screenshot({ path: join(artifacts, 'guest-closed.png'), fullPage: true });

  for (const c of [home.context, host.context, guest.context]) await c.close();
});

test('question text is shown as text and never runs as HTML', async () => {
  const home = await createEvent('XSS');
  const guest = await guestPage(home.guest);
  const attack = '<img src=x onerror=alert(1)>';
  await ask(guest.page, attack);
  await item(guest.page, 'questions', attack).locator('.badge').waitFor({ state: 'detached', timeout: 3000 });
  assert.equal(await item(guest.page, 'questions', attack).locator('.text').textContent(), attack);
  assert.equal(await guest.page.locator('#questions img').count(), 0, 'no element was created from the text');
  const host = await guestPage(home.host);
  await item(host.page, 'questions', attack).waitFor();
  assert.equal(await host.page.locator('#questions img').count(), 0);
  for (const c of [home.context, host.context, guest.context]) await c.close();
});

test('an own question shows at once as pending, and only once after the view has it', async () => {
  const home = await createEvent('Pending');
  const guest = await guestPage(home.guest);
  // Hold the view still (serve the old one) while the question is asked.
  let frozen = null;
  await guest.page.route('**/api/events/*/questions', async (route) => {
    if (route.request().method() !== 'GET' || frozen === false) return route.continue();
    if (frozen === null) {
      const response = await route.fetch();
      frozen = { body: await response.text(), headers: response.headers() };
    }
    return route.fulfill({ status: 200, body: frozen.body, headers: { ...frozen.headers, etag: '"frozen"' } });
  });
  await guest.page.reload();
  await ask(guest.page, 'Is my question safe?');
  const mine = item(guest.page, 'questions', 'Is my question safe?');
  await mine.getByText('pending').waitFor({ timeout: 2000 });
  await guest.page.screenshot({ path: join(artifacts, 'guest-pending.png'), fullPage: true });
  // Survives a reload while the view still lacks it.
  await guest.page.reload();
  await mine.getByText('pending').waitFor({ timeout: 2000 });
  frozen = false;
  await mine.locator('.badge').waitFor({ state: 'detached', timeout: 4000 });
  await guest.page.waitForTimeout(1500);
  assert.equal(await mine.count(), 1, 'not duplicated');
  const served = await (await fetch(`${base}/api/events/${home.guest.split('/').pop()}/questions`)).json();
  assert.equal(served.questions.filter((q) => q.text === 'Is my question safe?').length, 1, 'stored once');
  for (const c of [home.context, guest.context]) await c.close();
});

test('an unknown event and a wrong host link say so plainly', async () => {
  const unknown = await guestPage(`${base}/event/01ARZ3NDEKTSV4RRFFQ69G5FAV`);
  await unknown.page.getByText('does not exist or has expired').waitFor({ timeout: 3000 });
  const home = await createEvent('Wrong key');
  const wrong = await guestPage(home.host.replace(/#.*/, '#not-the-secret'));
  await wrong.page.getByText('host link is not valid').waitFor({ timeout: 3000 });
  for (const c of [unknown.context, home.context, wrong.context]) await c.close();
});

test('the character count follows the limit and keyboard users can ask', async () => {
  const home = await createEvent('Keyboard');
  const guest = await guestPage(home.guest, { viewport: { width: 1024, height: 768 } });
  await guest.page.getByLabel('Your question').fill('x'.repeat(1001));
  await assertText(guest.page.locator('#ask-count'), '1001 / 1000');
  assert.equal(await guest.page.getByRole('button', { name: 'Ask' }).isDisabled(), true);
  await guest.page.getByLabel('Your question').fill('Typed with a keyboard');
  await guest.page.keyboard.press('Tab');
  await guest.page.keyboard.type('Kim');
  await guest.page.keyboard.press('Tab');
  await guest.page.keyboard.press('Enter');
  await item(guest.page, 'questions', 'Typed with a keyboard').getByText('— Kim').waitFor({ timeout: 3000 });
  await home.context.close();
  await guest.context.close();
});

/** Waits up to three seconds for `locator`'s text to contain `expected`. */
async function assertText(locator, expected) {
  for (let i = 0; i < 60; i++) {
    if (((await locator.textContent()) ?? '').includes(expected)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail(`expected ${JSON.stringify(expected)} in ${JSON.stringify(await locator.textContent())}`);
}

// Two regions on one machine, in Chromium, through one address (README,
// "Regions"): `openfloor-regions up` starts an `openfloor --backend aws`
// server for us-east-1 and eu-west-1 against the AWS stand-in (moto) and the
// local edge in front of them (unprefixed paths go to us-east-1, the first);
// `openfloor-regions replicate` copies the events directory between them,
// and is paused with SIGSTOP to show replication lag.
//
// Needs OPENFLOOR_TEST_AWS_ENDPOINT (scripts/test starts moto and sets it);
// skipped without it, unless OPENFLOOR_REQUIRE_AWS_TESTS is set.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { DESKTOP, PHONE, artifacts, launchChromium, openPage, root } from './support.mjs';

const tools = process.env.OPENFLOOR_REGIONS_BIN ?? join(root, 'target', 'debug', 'openfloor-regions');
const endpoint = process.env.OPENFLOOR_TEST_AWS_ENDPOINT;
if (!endpoint && process.env.OPENFLOOR_REQUIRE_AWS_TESTS) {
  throw new Error('OPENFLOOR_REQUIRE_AWS_TESTS is set but OPENFLOOR_TEST_AWS_ENDPOINT is not');
}
const A = 'eu-west-1';
const B = 'us-east-1';

let regions;
let replicator;
let edge;
let browser;

/** Starts `args` and resolves with the first stdout line matching `pattern`. */
function start(args, pattern) {
  const child = spawn(tools, args, {
    env: { ...process.env, OPENFLOOR_LOG: 'warn' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const ready = new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`${args[0]} exited with ${code}`)));
    const lines = createInterface({ input: child.stdout });
    lines.on('line', (line) => {
      const match = pattern.exec(line);
      if (match) resolve(match);
    });
  });
  return { child, ready };
}

before(async () => {
  if (!endpoint) return;
  regions = start(['up', '--no-replicator', '--aws-endpoint-url', endpoint, '--regions', `${B},${A}`, '--listen', '127.0.0.1:0'],
    /^openfloor edge on (http:\/\/127\.0\.0\.1:\d+)$/);
  edge = (await regions.ready)[1];
  replicator = start(['replicate', '--aws-endpoint-url', endpoint, '--regions', `${A},${B}`, '--every-ms', '100'], /^replicating /);
  await replicator.ready;
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  replicator?.child.kill('SIGCONT');
  replicator?.child.kill('SIGTERM');
  regions?.child.kill('SIGTERM');
});

const open = (url, options = PHONE) => openPage(browser, url, options);

const item = (page, text) => page.locator('#questions li', { hasText: text });

test('a host chooses a region; guests anywhere join through one address', { skip: !endpoint }, async () => {
  // The host picks Europe on the home page; unprefixed requests reach B,
  // which sends the create on to A on the same origin.
  const home = await open(edge, DESKTOP);
  await home.page.locator('#region-choice').waitFor({ state: 'visible', timeout: 5000 });
  assert.deepEqual(await home.page.locator('#region-options input').evaluateAll((os) => os.map((o) => o.value)), ['', A, B]);
  assert.equal(await home.page.getByLabel(/^Automatic/).isChecked(), true, 'automatic unless the host picks one');
  await home.page.getByLabel('Europe (Ireland)', { exact: true }).check();
  await home.page.getByLabel('Event title').fill('Two regions');
  await home.page.screenshot({ path: join(artifacts, 'regions-home-choose.png'), fullPage: true });
  await home.page.getByRole('button', { name: 'Create event' }).click();
  // On to the event's host page, which says where it runs.
  await home.page.waitForURL(/\/host#/);
  await home.page.getByText('Event created (server: Europe (Ireland))').waitFor();
  assert.equal(await home.page.evaluate(() => document.activeElement.id), 'share-summary', 'focus moves on');
  const guestLink = await home.page.locator('#guest-link').textContent();
  const hostLink = home.page.url();
  assert.match(guestLink, new RegExp(`^${edge}/r/${A}/event/[0-9A-Z]{26}$`));
  assert.match(hostLink, new RegExp(`^${edge}/r/${A}/event/[0-9A-Z]{26}/host#[0-9a-f]{40}$`));
  await home.page.screenshot({ path: join(artifacts, 'regions-home.png'), fullPage: true });
  const id = guestLink.split('/').pop();

  // A guest follows the share link and asks: the asker's own vote counts.
  const first = await open(guestLink);
  await first.page.getByLabel('Your question').fill('Is my vote counted once?');
  await first.page.getByRole('button', { name: 'Ask' }).click();
  await item(first.page, 'counted once').locator('.badge').waitFor({ state: 'detached', timeout: 10000 });
  await item(first.page, 'counted once').locator('.vote[aria-pressed=true]').waitFor();

  // A second guest has a stale hint (B): B sends every call on to A, and
  // the page switches to A's address.
  const second = await open(`${edge}/r/${B}/event/${id}`);
  await item(second.page, 'counted once').waitFor({ timeout: 10000 });
  await second.page.waitForURL(`${edge}/r/${A}/event/${id}`, { timeout: 5000 });
  await item(second.page, 'counted once').getByRole('button', { name: /Upvote/ }).click();
  await second.page.screenshot({ path: join(artifacts, 'regions-guest-phone.png'), fullPage: true });

  // The host sees the exact count.
  const host = await open(hostLink, DESKTOP);
  await item(host.page, 'counted once').locator('.vote .n', { hasText: '2' }).waitFor({ timeout: 10000 });
  await host.page.screenshot({ path: join(artifacts, 'regions-host.png'), fullPage: true });
  for (const c of [home.context, first.context, second.context, host.context]) await c.close();
});

test('a guest of a brand-new event waits for replication, then sees the board', { skip: !endpoint }, async () => {
  replicator.child.kill('SIGSTOP');
  let resumed = false;
  try {
    const created = await (await fetch(`${edge}/r/${A}/api/events`, {
      method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ title: 'Brand new' }),
    })).json();
    assert.equal(created.region, A);
    // A hand-typed link without the region reaches B, which has not heard
    // of the event yet.
    const guest = await open(`${edge}/event/${created.id}`);
    await guest.page.getByText('still being set up').waitFor({ timeout: 5000 });
    assert.equal(await guest.page.getByRole('status').filter({ hasText: 'still being set up' }).count(), 1, 'told politely');
    assert.equal(await guest.page.locator('#problem').isVisible(), false, 'not an alert');
    assert.equal(await guest.page.getByText('does not exist').count(), 0);
    await guest.page.screenshot({ path: join(artifacts, 'regions-waiting.png'), fullPage: true });
    replicator.child.kill('SIGCONT');
    resumed = true;
    await guest.page.locator('#title', { hasText: 'Brand new' }).waitFor({ timeout: 10000 });
    await guest.page.waitForURL(`${edge}/r/${A}/event/${created.id}`, { timeout: 5000 });
    assert.equal(await guest.page.locator('#waiting').isVisible(), false, 'the waiting note is gone');
    await guest.context.close();
  } finally {
    if (!resumed) replicator.child.kill('SIGCONT');
  }
});

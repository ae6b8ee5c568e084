// The README's screenshots (docs/screenshots/*.png): a sample event on a
// fresh server, shown as a guest on a phone, a host at a desk (dark) and a
// presenter screen. Small PNGs (one pixel per CSS pixel).
// Run after `cargo build -p openfloor`:  node client/scripts/screenshots.mjs

import { join } from 'node:path';
import { launchChromium, root, startServer } from '../tests/support.mjs';

const out = join(root, 'docs', 'screenshots');
const server = await startServer('screenshots', ['--limit-by-address', 'false']);
const browser = await launchChromium();
try {
  const post = (path, body, headers = {}) => fetch(`${server.base}${path}`, {
    method: path.endsWith('/vote') ? 'PUT' : 'POST',
    headers: { 'Content-Type': 'application/json', ...headers },
    body: JSON.stringify(body),
  }).then((r) => r.json());
  const event = await post('/api/events', { title: 'Quarterly town hall' });
  const questions = [
    ['When will the new office open?', 'Priya', 9],
    ['Will the slides be shared after the talk?', null, 6],
    ['How does the hiring freeze affect open roles?', 'Jonas', 4],
    ['Can we have more remote days in summer?', null, 2],
    ['What was the biggest surprise this quarter?', 'Ana', 1],
  ];
  for (const [text, author, votes] of questions) {
    const { id } = await post(`/api/events/${event.id}/questions`, { text, author: author ?? undefined });
    for (let v = 0; v < votes; v++) {
      await post(`/api/events/${event.id}/questions/${id}/vote`, { up: true }, { 'X-Voter': `sample-voter-${String(v).padStart(8, '0')}` });
    }
  }
  const shoot = async (url, options, file) => {
    const context = await browser.newContext({ deviceScaleFactor: 1, ...options });
    const page = await context.newPage();
    await page.goto(url);
    await page.locator('#title', { hasText: 'Quarterly town hall' }).waitFor();
    await page.waitForTimeout(1500);
    await page.screenshot({ path: join(out, file) });
    await context.close();
  };
  const guest = new URL(event.guest_url, server.base).href;
  await shoot(guest, { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true }, 'guest-phone.png');
  await shoot(new URL(event.host_url, server.base).href, { viewport: { width: 1280, height: 800 }, colorScheme: 'dark' }, 'host-desktop-dark.png');
  await shoot(`${server.base}/event/${event.id}/present`, { viewport: { width: 1280, height: 720 } }, 'presenter.png');
  console.log(`written to ${out}`);
} finally {
  await browser.close();
  server.stop();
}

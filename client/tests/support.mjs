// What the browser tests share: where things are, the sizes pages are tried
// at, Chromium as this machine runs it, a fresh openfloor server, and a page
// that fails its test if a dialog opens. (Not a test file: the runner picks
// only *.test.mjs.)

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { chromium } from 'playwright-core';

export const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
/** Screenshots, at the repository root. */
export const artifacts = join(root, 'test-artifacts');
export const PHONE = { viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true };
export const DESKTOP = { viewport: { width: 1280, height: 900 } };

/**
 * Debian's Chromium, with the flags this machine needs (no sandbox as root,
 * no GPU, and none of the background connections its closed network refuses).
 */
export function launchChromium() {
  mkdirSync(artifacts, { recursive: true });
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
      '--disable-sync', '--no-first-run', '--disable-quic'],
  });
}

/**
 * Starts the debug binary on a free loopback port with a new data directory;
 * resolves with its base URL and a `stop` that ends it and removes the data.
 */
export async function startServer(name, args = []) {
  const binary = process.env.OPENFLOOR_BIN ?? join(root, 'target', 'debug', 'openfloor');
  const data = mkdtempSync(join(tmpdir(), `openfloor-${name}-`));
  const server = spawn(binary, ['--listen', '127.0.0.1:0', '--data', data, ...args], {
    env: { ...process.env, OPENFLOOR_LOG: 'warn' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const firstLine = await new Promise((resolve, reject) => {
    server.once('error', reject);
    createInterface({ input: server.stdout }).once('line', resolve);
  });
  const base = firstLine.replace('openfloor listening on ', '').trim();
  assert.match(base, /^http:\/\/127\.0\.0\.1:\d+$/);
  const stop = () => {
    server.kill('SIGTERM');
    rmSync(data, { recursive: true, force: true });
  };
  return { base, stop };
}

/** A page in a new context that fails the test if any dialog (alert) opens. */
export async function openPage(browser, url, options = PHONE) {
  const context = await browser.newContext(options);
  const page = await context.newPage();
  page.on('dialog', (d) => { throw new Error(`unexpected dialog: ${d.message()}`); });
  await page.goto(url);
  return { context, page };
}

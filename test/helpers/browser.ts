/**
 * Debian's Chromium driven by playwright-core (Playwright's own browser download does not work
 * here). Every request the page makes is recorded, so a test can assert none left the gateway.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const root = path.resolve(__dirname, '../..');

/** Flags that keep Chromium from calling home on a machine without a network (STACK-NOTES). */
const ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-default-apps',
  '--disable-domain-reliability',
];

export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} not found: install Debian's chromium (apt-get install -y chromium), as .ci/run does`);
  }
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: ARGS, timeout: 30_000 });
}

/** Builds dist/graphiql when a developer runs jest directly (npm test builds it first). */
export async function ensureGraphiqlBuilt(): Promise<void> {
  if (existsSync(path.join(root, 'dist/graphiql/index.html'))) return;
  await promisify(execFile)(process.execPath, [path.join(root, 'src/graphiql/build.mjs')], { cwd: root });
}

export interface RecordedPage {
  readonly context: BrowserContext;
  readonly page: Page;
  /** Every URL the page (and its workers) requested, WebSockets included. */
  readonly requests: string[];
  /** Console errors and uncaught page errors. */
  readonly errors: string[];
}

export async function openPage(browser: Browser): Promise<RecordedPage> {
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  const page = await context.newPage();
  const requests: string[] = [];
  const errors: string[] = [];
  context.on('request', (request) => requests.push(request.url()));
  page.on('websocket', (socket) => requests.push(socket.url()));
  page.on('worker', (worker) => requests.push(worker.url()));
  page.on('pageerror', (error) => errors.push(error.message));
  context.on('response', (response) => {
    if (response.status() >= 400) errors.push(`${response.status()} ${response.url()}`);
  });
  page.on('console', (message) => {
    if (message.type() === 'error') errors.push(message.text());
  });
  return { context, page, requests, errors };
}

export const ARTIFACTS = path.join(root, 'test-artifacts');

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

/** The one message a run without Chromium fails with (checked before anything else is opened). */
export function requireChromium(): void {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} not found: install Debian's chromium (apt-get install -y chromium) or point CHROMIUM_PATH at a Chromium`);
  }
}

/** Every browser launched here and not yet closed: `closeBrowsers()` closes them in `afterAll`. */
const browsers = new Set<Browser>();

export async function launchChromium(): Promise<Browser> {
  requireChromium();
  let browser: Browser;
  try {
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ARGS, timeout: 30_000 });
  } catch (error) {
    // Playwright's message carries the whole command line and call log, repeated for every test
    // of the file; its first line says why.
    const why = (error instanceof Error ? error.message : String(error)).split('\n')[0];
    throw new Error(`${CHROMIUM} did not start (${why}); is it Debian's chromium? Set CHROMIUM_PATH to another Chromium`);
  }
  // Registered the moment it exists, so a test whose other start-up step failed still closes it.
  browsers.add(browser);
  browser.once('disconnected', () => browsers.delete(browser));
  return browser;
}

/** Closes every browser `launchChromium` opened (and with them their pages and sockets). */
export async function closeBrowsers(): Promise<void> {
  const open = [...browsers];
  browsers.clear();
  await Promise.all(open.map((browser) => browser.close().catch(() => undefined)));
}

/**
 * Runs start-up steps together and waits for every one of them to settle before failing with the
 * first failure: each step assigns what it opened as soon as it resolves, so `afterAll` closes it.
 * (`Promise.all` fails at the first rejection while the others are still opening; their results
 * would arrive after `afterAll` had run and keep jest from exiting.)
 */
export async function startAll(steps: readonly Promise<unknown>[]): Promise<void> {
  const settled = await Promise.allSettled(steps);
  const failed = settled.find((result): result is PromiseRejectedResult => result.status === 'rejected');
  if (failed) throw failed.reason;
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

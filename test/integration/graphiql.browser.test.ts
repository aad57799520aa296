/**
 * GraphiQL in a real browser (Debian's Chromium): the page served by the gateway, a token pasted
 * into it, a quotaChanged subscription over graphql-ws, an event published to RabbitMQ as the
 * platform does, and the result pane showing it. Nothing is loaded from any other host.
 */
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import type { Browser } from 'playwright-core';
import { openPlatformPeer, type PlatformPeer } from '../helpers/amqp';
import { ARTIFACTS, ensureGraphiqlBuilt, launchChromium, openPage, type RecordedPage } from '../helpers/browser';
import { token } from '../helpers/clients';
import { realServicesEnv, startGateway, stopGateways, waitForSubscriptions, type TestGateway } from '../helpers/gateway';
import { createTestDatabase, uniqueId, type TestDatabase } from '../helpers/services';

jest.setTimeout(90_000);

let database: TestDatabase;
let gateway: TestGateway;
let peer: PlatformPeer;
let browser: Browser;
const pages: RecordedPage[] = [];

beforeAll(async () => {
  await ensureGraphiqlBuilt();
  database = await createTestDatabase();
  [gateway, peer, browser] = await Promise.all([
    startGateway(realServicesEnv(database.url)),
    openPlatformPeer(),
    launchChromium(),
  ]);
});

afterEach(async () => {
  // Closing a page closes its socket: the next test counts its own subscriptions from zero.
  await Promise.all(pages.splice(0).map((p) => p.context.close().catch(() => undefined)));
  await waitForSubscriptions(gateway, 0);
});

afterAll(async () => {
  await Promise.all(pages.map((p) => p.context.close().catch(() => undefined)));
  await browser?.close();
  await stopGateways();
  await peer?.close();
  await database?.drop();
});

/** Everything a page requested went to the gateway itself (or stayed inside the page). */
function offOrigin(requests: readonly string[], origin: string): string[] {
  const host = new URL(origin).host;
  return requests.filter((url) => {
    if (url.startsWith('data:') || url.startsWith('blob:') || url === 'about:blank') return false;
    return new URL(url).host !== host;
  });
}

const resultPane = (p: RecordedPage) => p.page.locator('.result-window');

const SUBSCRIPTION = `subscription WatchQuota {
  quotaChanged { eventId type userId kind usagePercent limits { maxDevices } }
}`;

it('subscribes to quotaChanged with a pasted token and shows an event published to RabbitMQ', async () => {
  const user = uniqueId('gina');
  const recorded = await openPage(browser);
  pages.push(recorded);
  const { page } = recorded;

  const response = await page.goto(`${gateway.app.url}/graphiql?query=${encodeURIComponent(SUBSCRIPTION)}`);
  expect(response?.status()).toBe(200);
  expect(response?.headers()['content-security-policy']).toContain("connect-src 'self'");
  await page.locator('.graphiql-execute-button').waitFor();
  // Outside production with an HS256 secret the page says how to mint a development token.
  await expect(page.locator('#cpr-token-hint').textContent()).resolves.toContain('npm run token -- --sub');

  await page.locator('#cpr-token').fill(`Bearer ${token(user)}`);
  await page.locator('#cpr-token-apply').click();
  await expect(page.locator('#cpr-token-who').textContent()).resolves.toContain(`user ${user}`);

  await page.locator('.graphiql-execute-button').click();
  await waitForSubscriptions(gateway, 1);
  await page.locator('#cpr-socket[data-state="connected"]').waitFor();

  const eventId = `browser-${user}`;
  await peer.publish(
    'quota.updated',
    {
      userId: user,
      limits: { maxDevices: 7 },
      usagePercent: 42.5,
      _trace: { traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' },
    },
    { messageId: eventId },
  );
  await page.waitForFunction(
    (id) => document.querySelector('.result-window')?.textContent?.includes(id) ?? false,
    eventId,
    { timeout: 15_000 },
  );
  const shown = (await resultPane(recorded).textContent())?.replace(/\s+/g, ' ') ?? '';
  expect(shown).toContain('"quotaChanged"');
  expect(shown).toContain(`"userId": "${user}"`);
  expect(shown).toContain('"kind": "UPDATED"');
  expect(shown).toContain('"maxDevices": 7');
  expect(shown).not.toMatch(/_trace|traceparent/);

  await mkdir(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: path.join(ARTIFACTS, 'graphiql-quota-changed.png') });

  // The socket went to the gateway's own /graphql, as did everything else.
  expect(recorded.requests).toContain(`ws://127.0.0.1:${gateway.app.port}/graphql`);
  expect(recorded.requests.some((url) => url.endsWith('/graphiql/assets/graphiql.js'))).toBe(true);
  expect(offOrigin(recorded.requests, gateway.app.url)).toEqual([]);
  expect(recorded.errors).toEqual([]);
});

it('runs queries over HTTP with the token, and says UNAUTHENTICATED without one', async () => {
  const user = uniqueId('hugo');
  const recorded = await openPage(browser);
  pages.push(recorded);
  const { page } = recorded;
  await page.goto(`${gateway.app.url}/graphiql?query=${encodeURIComponent('query Mine { quota { userId } }')}`);
  await page.locator('.graphiql-execute-button').click();
  await page.waitForFunction(() => document.querySelector('.result-window')?.textContent?.includes('UNAUTHENTICATED') ?? false);

  await page.locator('#cpr-token').fill(token(user));
  await page.locator('#cpr-token-apply').click();
  await page.locator('.graphiql-execute-button').click();
  // No quota row yet for this user: data.quota is null, and no error.
  await page.waitForFunction(() => /"quota":\s*null/.test(document.querySelector('.result-window')?.textContent ?? ''));
  expect(await resultPane(recorded).textContent()).not.toContain('UNAUTHENTICATED');
  expect(offOrigin(recorded.requests, gateway.app.url)).toEqual([]);
});

it('reconnects the socket with a new token: the next subscription runs as the new user', async () => {
  const before = uniqueId('ivy');
  const after = uniqueId('jay');
  const recorded = await openPage(browser);
  pages.push(recorded);
  const { page } = recorded;
  await page.goto(`${gateway.app.url}/graphiql?query=${encodeURIComponent(SUBSCRIPTION)}`);
  await page.locator('#cpr-token').fill(token(before));
  await page.locator('#cpr-token-apply').click();
  await page.locator('.graphiql-execute-button').click();
  await waitForSubscriptions(gateway, 1);
  await page.locator('#cpr-socket[data-state="connected"]').waitFor();

  // A new token closes the socket that authenticated with the old one (and its subscription).
  await page.locator('#cpr-token').fill(token(after));
  await page.locator('#cpr-token-apply').click();
  await waitForSubscriptions(gateway, 0);
  await expect(page.locator('#cpr-token-who').textContent()).resolves.toContain(`user ${after}`);

  await page.locator('.graphiql-execute-button[aria-label^="Execute"]').click();
  await waitForSubscriptions(gateway, 1);
  await page.locator('#cpr-socket[data-state="connected"]').waitFor();
  // The new socket speaks for the new user: the old user's event is not shown, the new one's is.
  await peer.publish('quota.deleted', { userId: before }, { messageId: `old-${before}` });
  await peer.publish('quota.deleted', { userId: after }, { messageId: `new-${after}` });
  await page.waitForFunction((id) => document.querySelector('.result-window')?.textContent?.includes(id) ?? false, `new-${after}`);
  expect(await resultPane(recorded).textContent()).not.toContain(`old-${before}`);
  expect(offOrigin(recorded.requests, gateway.app.url)).toEqual([]);
});

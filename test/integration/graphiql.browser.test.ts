/**
 * GraphiQL in a real browser (Debian's Chromium): the page served by the gateway, a token pasted
 * into it, a quotaChanged subscription over graphql-ws, an event published to RabbitMQ as the
 * platform does, and the result pane showing it. Nothing is loaded from any other host.
 *
 * Also what a newcomer meets first: the token in the box is what the next Run uses (no "Use
 * token" click needed), a refused socket shows its close code and reason instead of a spinner,
 * and the embedded default's development-only "act as" control, absent everywhere else.
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Browser } from 'playwright-core';
import type { MemoryEventBus } from '../../src/infra/memory/memory-bus';
import { UpdateQuotaDocument } from '../generated/graphql';
import { openPlatformPeer, type PlatformPeer } from '../helpers/amqp';
import {
  ARTIFACTS,
  closeBrowsers,
  ensureGraphiqlBuilt,
  launchChromium,
  openPage,
  requireChromium,
  startAll,
  type RecordedPage,
} from '../helpers/browser';
import { http, token } from '../helpers/clients';
import { realServicesEnv, startGateway, stopGateways, waitForSubscriptions, type TestGateway } from '../helpers/gateway';
import { createTestDatabase, uniqueId, type TestDatabase } from '../helpers/services';

jest.setTimeout(90_000);

// Without Chromium the file fails here, once, with what to install, before anything is opened.
requireChromium();

// Each is assigned the moment it exists (never as one Promise.all's result), so afterAll closes
// whatever opened even when another start-up step failed.
let database: TestDatabase | undefined;
let dataDir: string | undefined;
/** Real services, outside production: the page most tests use. */
let gateway: TestGateway;
/** Real services, NODE_ENV=production: no development-only control or route. */
let production: TestGateway;
/** The embedded default on the development secret: the "act as" control and POST /dev/token. */
let embedded: TestGateway;
let peer: PlatformPeer | undefined;
let browser: Browser;
const pages: RecordedPage[] = [];

beforeAll(async () => {
  await ensureGraphiqlBuilt();
  database = await createTestDatabase();
  dataDir = await mkdtemp(path.join(os.tmpdir(), 'cpr-graphiql-'));
  const url = database.url;
  await startAll([
    // One after the other on the shared database: both would migrate it at start-up.
    startGateway(realServicesEnv(url)).then(async (started) => {
      gateway = started;
      production = await startGateway(realServicesEnv(url, { NODE_ENV: 'production' }));
    }),
    // The test secret unset: the embedded default runs on the development secret, as `npm start` does.
    startGateway({ DATA_DIR: path.join(dataDir, 'db'), JWT_SECRET: undefined }).then((started) => void (embedded = started)),
    openPlatformPeer().then((opened) => void (peer = opened)),
    launchChromium().then((launched) => void (browser = launched)),
  ]);
});

afterEach(async () => {
  // Closing a page closes its socket: the next test counts its own subscriptions from zero.
  await Promise.all(pages.splice(0).map((p) => p.context.close().catch(() => undefined)));
  if (gateway) await waitForSubscriptions(gateway, 0);
  if (embedded) await waitForSubscriptions(embedded, 0);
});

afterAll(async () => {
  // Every step runs even when an earlier one fails; the first failure is reported afterwards.
  const steps: (() => Promise<unknown> | undefined)[] = [
    () => closeBrowsers(),
    () => stopGateways(),
    () => peer?.close(),
    () => database?.drop(),
    () => (dataDir ? rm(dataDir, { recursive: true, force: true }) : undefined),
  ];
  const failures: unknown[] = [];
  for (const step of steps)
    await Promise.resolve()
      .then(step)
      .catch((error: unknown) => failures.push(error));
  if (failures.length > 0) throw failures[0];
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
/** Waits for `text` in the result pane; Monaco wraps long lines, so whitespace is compared loosely. */
const resultShows = (p: RecordedPage, text: string, timeout = 15_000) =>
  p.page.waitForFunction((t) => (document.querySelector('.result-window')?.textContent ?? '').replace(/\s+/g, ' ').includes(t), text, {
    timeout,
  });
const execute = (p: RecordedPage) => p.page.locator('.graphiql-execute-button[aria-label^="Execute"]').click();
const stop = (p: RecordedPage) => p.page.locator('.graphiql-execute-button[aria-label^="Stop"]').click();
const socketsTo = (p: RecordedPage, g: TestGateway) => p.requests.filter((url) => url === g.wsUrl);

async function open(g: TestGateway, query: string): Promise<RecordedPage> {
  const recorded = await openPage(browser);
  pages.push(recorded);
  const response = await recorded.page.goto(`${g.app.url}/graphiql?query=${encodeURIComponent(query)}`);
  expect(response?.status()).toBe(200);
  await recorded.page.locator('.graphiql-execute-button').waitFor();
  return recorded;
}

const SUBSCRIPTION = `subscription WatchQuota {
  quotaChanged { eventId type userId kind usagePercent limits { maxDevices } }
}`;

it('subscribes to quotaChanged with a pasted token and shows an event published to RabbitMQ', async () => {
  const user = uniqueId('gina');
  const recorded = await open(gateway, SUBSCRIPTION);
  const { page } = recorded;
  // Outside production with an HS256 secret the page says how to mint a development token.
  await expect(page.locator('#cpr-token-hint').textContent()).resolves.toContain('npm run token -- --sub');

  await page.locator('#cpr-token').fill(`Bearer ${token(user)}`);
  await page.locator('#cpr-token-apply').click();
  await expect(page.locator('#cpr-token-who').textContent()).resolves.toContain(`user ${user}`);

  await execute(recorded);
  await waitForSubscriptions(gateway, 1);
  await page.locator('#cpr-socket[data-state="connected"]').waitFor();

  const eventId = `browser-${user}`;
  await peer!.publish(
    'quota.updated',
    {
      userId: user,
      limits: { maxDevices: 7 },
      usagePercent: 42.5,
      _trace: { traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' },
    },
    { messageId: eventId },
  );
  await resultShows(recorded, eventId);
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

it('runs a subscription with the token pasted into the box, without "Use token", and reconnects for the next one', async () => {
  const first = uniqueId('nora');
  const second = uniqueId('otto');
  const recorded = await open(gateway, SUBSCRIPTION);
  const { page } = recorded;

  // Paste and Run: no click on "Use token".
  await page.locator('#cpr-token').fill(`Bearer ${token(first)}`);
  await execute(recorded);
  await waitForSubscriptions(gateway, 1);
  await page.locator('#cpr-socket[data-state="connected"]').waitFor();
  // The page now says who it runs as: the token the Run used.
  await expect(page.locator('#cpr-token-who').textContent()).resolves.toContain(`user ${first}`);
  await peer!.publish('quota.updated', { userId: first, limits: { maxDevices: 2 } }, { messageId: `pasted-${first}` });
  await resultShows(recorded, `pasted-${first}`);

  // Stop, paste another user's token, Run again: a new socket authenticated as that user.
  await stop(recorded);
  await waitForSubscriptions(gateway, 0);
  await page.locator('#cpr-token').fill(token(second));
  await execute(recorded);
  await waitForSubscriptions(gateway, 1);
  await page.locator('#cpr-socket[data-state="connected"]').waitFor();
  await expect(page.locator('#cpr-token-who').textContent()).resolves.toContain(`user ${second}`);
  await peer!.publish('quota.deleted', { userId: first }, { messageId: `old-${first}` });
  await peer!.publish('quota.deleted', { userId: second }, { messageId: `new-${second}` });
  await resultShows(recorded, `new-${second}`);
  expect(await resultPane(recorded).textContent()).not.toContain(`old-${first}`);
  expect(socketsTo(recorded, gateway)).toHaveLength(2);
  expect(recorded.errors).toEqual([]);
});

it('runs queries over HTTP with the token in the box, and says UNAUTHENTICATED without one', async () => {
  const user = uniqueId('hugo');
  const recorded = await open(gateway, 'query Mine { quota { userId } }');
  const { page } = recorded;
  await execute(recorded);
  await resultShows(recorded, 'UNAUTHENTICATED');

  // Pasted, not applied: the next Run sends it.
  await page.locator('#cpr-token').fill(token(user));
  await execute(recorded);
  // No quota row yet for this user: data.quota is null, and no error.
  await page.waitForFunction(() => /"quota":\s*null/.test(document.querySelector('.result-window')?.textContent ?? ''));
  expect(await resultPane(recorded).textContent()).not.toContain('UNAUTHENTICATED');
  await expect(page.locator('#cpr-token-who').textContent()).resolves.toContain(`user ${user}`);
  expect(offOrigin(recorded.requests, gateway.app.url)).toEqual([]);
});

it('"Use token" closes a socket authenticated with the old token: the next subscription runs as the new user', async () => {
  const before = uniqueId('ivy');
  const after = uniqueId('jay');
  const recorded = await open(gateway, SUBSCRIPTION);
  const { page } = recorded;
  await page.locator('#cpr-token').fill(token(before));
  await page.locator('#cpr-token-apply').click();
  await execute(recorded);
  await waitForSubscriptions(gateway, 1);
  await page.locator('#cpr-socket[data-state="connected"]').waitFor();

  // Applying a new token closes the old socket (and its subscription) at once, not at the next Run.
  await page.locator('#cpr-token').fill(token(after));
  await page.locator('#cpr-token-apply').click();
  await waitForSubscriptions(gateway, 0);
  await expect(page.locator('#cpr-token-who').textContent()).resolves.toContain(`user ${after}`);

  await execute(recorded);
  await waitForSubscriptions(gateway, 1);
  await page.locator('#cpr-socket[data-state="connected"]').waitFor();
  await peer!.publish('quota.deleted', { userId: before }, { messageId: `old-${before}` });
  await peer!.publish('quota.deleted', { userId: after }, { messageId: `new-${after}` });
  await resultShows(recorded, `new-${after}`);
  expect(await resultPane(recorded).textContent()).not.toContain(`old-${before}`);
  expect(offOrigin(recorded.requests, gateway.app.url)).toEqual([]);
});

it("shows a refused socket's close code and reason on screen, once, instead of an endless spinner", async () => {
  const user = uniqueId('pia');
  const recorded = await open(gateway, SUBSCRIPTION);
  const { page } = recorded;
  // Signed with a secret the gateway does not know: the socket is closed with 4403.
  await page.locator('#cpr-token').fill(token(user, { secret: 'not-the-gateway-secret' }));
  await execute(recorded);

  const problem = page.locator('#cpr-socket-problem');
  await problem.waitFor();
  expect(await problem.textContent()).toBe(
    'The socket was closed with 4403 Forbidden: the server refused the token (missing, invalid or expired); put a valid token in the JWT box and run again',
  );
  await page.locator('#cpr-socket[data-state="closed"][data-code="4403"]').waitFor();
  expect(await page.locator('#cpr-socket').textContent()).toBe('socket: closed (4403 Forbidden)');
  // The operation says why it did not run, and has ended (the button offers Execute again).
  await resultShows(recorded, 'The socket was closed with 4403 Forbidden: the server refused the token');
  const shown = (await resultPane(recorded).textContent())?.replace(/\s+/g, ' ') ?? '';
  expect(shown).toContain('"closeCode": 4403');
  await page.locator('.graphiql-execute-button[aria-label^="Execute"]').waitFor();
  expect(await page.locator('.graphiql-spinner').count()).toBe(0);
  // Not retried with the same token (graphql-ws would retry 4403 three times, seconds apart).
  expect(socketsTo(recorded, gateway)).toHaveLength(1);
  expect(gateway.app.stats().subscriptions.quotaChanged ?? 0).toBe(0);

  await mkdir(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: path.join(ARTIFACTS, 'graphiql-refused-socket.png') });

  // A good token in the box and Run: the message goes, the subscription runs.
  await page.locator('#cpr-token').fill(token(user));
  await execute(recorded);
  await waitForSubscriptions(gateway, 1);
  await page.locator('#cpr-socket[data-state="connected"]').waitFor();
  expect(await problem.count()).toBe(0);
  expect(offOrigin(recorded.requests, gateway.app.url)).toEqual([]);
});

it('on the embedded default, "act as" fills the token box with development tokens that work', async () => {
  const user = uniqueId('kim');
  const recorded = await open(embedded, SUBSCRIPTION);
  const { page } = recorded;
  await page.locator('#cpr-act-as').waitFor();

  // A user id the route refuses: the reason shows next to the control, the box stays empty.
  await page.locator('#cpr-act-as-user').fill('two words');
  await page.locator('#cpr-act-as-as-user').click();
  await expect(page.locator('#cpr-act-as-problem').textContent()).resolves.toContain('sub must be a user id');
  expect(await page.locator('#cpr-token').inputValue()).toBe('');
  // The refused request is the only error so far (Chromium also logs it to the console).
  const refusedRequest = recorded.errors.splice(0);
  expect(refusedRequest).toContain(`400 ${embedded.app.url}/dev/token`);
  expect(refusedRequest.filter((e) => !/400/.test(e))).toEqual([]);

  await page.locator('#cpr-act-as-user').fill(user);
  await page.locator('#cpr-act-as-as-user').click();
  await page.waitForFunction((u) => document.querySelector('#cpr-token-who')?.textContent?.includes(`user ${u},`) ?? false, user);
  const userToken = await page.locator('#cpr-token').inputValue();
  const claims = JSON.parse(Buffer.from(userToken.split('.')[1] ?? '', 'base64url').toString()) as Record<string, unknown>;
  expect(claims).toMatchObject({ sub: user, roles: [] });
  expect((claims.exp as number) - (claims.iat as number)).toBe(900);

  // The filled token subscribes, and an event on the in-process bus reaches the page.
  await execute(recorded);
  await waitForSubscriptions(embedded, 1);
  await page.locator('#cpr-socket[data-state="connected"]').waitFor();
  const bus = embedded.app.bus as MemoryEventBus;
  bus.publishRaw('quota.updated', Buffer.from(JSON.stringify({ userId: user, limits: { maxDevices: 4 } })), {
    messageId: `act-as-${user}`,
  });
  await resultShows(recorded, `act-as-${user}`);
  await mkdir(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: path.join(ARTIFACTS, 'graphiql-act-as.png') });
  await stop(recorded);
  await waitForSubscriptions(embedded, 0);

  // As admin: the token says so, and an administrator's mutation is accepted with it.
  await page.locator('#cpr-act-as-as-admin').click();
  await page.waitForFunction(() => document.querySelector('#cpr-token-who')?.textContent?.includes('(admin)') ?? false);
  const adminToken = await page.locator('#cpr-token').inputValue();
  expect(adminToken).not.toBe(userToken);
  const updated = await http(embedded.httpUrl, UpdateQuotaDocument, {
    token: adminToken,
    variables: { userId: user, input: { limits: { maxDevices: 5 } } },
  });
  expect(updated.body.errors).toBeUndefined();
  expect(updated.body.data?.updateQuota.limits?.maxDevices).toBe(5);
  expect(offOrigin(recorded.requests, embedded.app.url)).toEqual([]);
  expect(recorded.errors).toEqual([]);
});

it('has no "act as" control and no /dev/token route in production, nor on real services', async () => {
  for (const [g, where] of [
    [production, 'production'],
    [gateway, 'real services'],
  ] as const) {
    const recorded = await open(g, SUBSCRIPTION);
    const { page } = recorded;
    const status = await page.evaluate(
      async () =>
        (
          await fetch('/dev/token', {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ sub: 'alice', admin: true }),
          })
        ).status,
    );
    expect([where, await page.locator('#cpr-act-as').count(), status]).toEqual([where, 0, 404]);
  }
  // The same check finds the control where it belongs, so its absence above is not a broken selector.
  const recorded = await open(embedded, SUBSCRIPTION);
  await recorded.page.locator('#cpr-act-as').waitFor();
  expect(await recorded.page.locator('#cpr-act-as').count()).toBe(1);
});

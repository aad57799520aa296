/**
 * Multipart HTTP and SSE subscriptions in a real browser (Debian's Chromium): a page on the
 * gateway's origin (bundled from test/fixtures/stream-page.ts when the test runs; Playwright
 * answers the page's own URL, everything else it asks goes to the gateway) opens a
 * browser `EventSource` on /graphql/stream and an Apollo Client 4 `HttpLink` subscription on
 * /graphql; an event published to RabbitMQ reaches both. Then EventSource's own resume: two
 * instances behind one front (as behind a load balancer), the first shuts down (its SSE stream
 * ends without `complete`, so the browser reconnects by itself), events are published while the
 * browser's reconnect is held at the front, and once it reaches the second instance with
 * `Last-Event-ID` the missed events arrive, then live ones, none twice.
 */
import path from 'node:path';
import type { Browser } from 'playwright-core';
import { build } from 'esbuild';
import { openPlatformPeer, type PlatformPeer } from '../helpers/amqp';
import { closeBrowsers, launchChromium, openPage, requireChromium, startAll, type RecordedPage } from '../helpers/browser';
import { token } from '../helpers/clients';
import { realServicesEnv, startGateway, stopGateway, stopGateways, waitForSubscriptions, type TestGateway } from '../helpers/gateway';
import { startHttpFront, type HttpFront } from '../helpers/http-front';
import { createTestDatabase, uniqueId, type TestDatabase } from '../helpers/services';
import { waitFor } from '../helpers/wait';

jest.setTimeout(90_000);

requireChromium();

let database: TestDatabase | undefined;
let a: TestGateway;
let b: TestGateway;
let front: HttpFront | undefined;
let peer: PlatformPeer | undefined;
let browser: Browser;
let script = '';

beforeAll(async () => {
  database = await createTestDatabase();
  // One queue and one topic prefix: two instances of one deployment, sharing the retained log.
  const env = realServicesEnv(database.url);
  await startAll([
    startGateway(env).then(async (started) => {
      a = started;
      b = await startGateway(env);
      front = await startHttpFront(a.app.port);
    }),
    openPlatformPeer().then((opened) => void (peer = opened)),
    launchChromium().then((launched) => void (browser = launched)),
    build({
      entryPoints: [path.join(__dirname, '../fixtures/stream-page.ts')],
      bundle: true,
      write: false,
      format: 'iife',
      platform: 'browser',
      target: 'es2022',
      define: { 'process.env.NODE_ENV': '"production"' },
      logLevel: 'silent',
    }).then((result) => void (script = result.outputFiles[0]!.text)),
  ]);
});

afterAll(async () => {
  const steps: (() => Promise<unknown> | undefined)[] = [
    () => closeBrowsers(),
    () => front?.close(),
    () => stopGateways(),
    () => peer?.close(),
    () => database?.drop(),
  ];
  const failures: unknown[] = [];
  for (const step of steps)
    await Promise.resolve()
      .then(step)
      .catch((error: unknown) => failures.push(error));
  if (failures.length > 0) throw failures[0];
});

const QUERY = 'subscription { quotaChanged { eventId kind } }';

/** The test page, served on the front's origin: the page, its EventSource and its fetches all go there. */
async function openStreamPage(origin: string): Promise<RecordedPage> {
  const recorded = await openPage(browser);
  await recorded.context.route(`${origin}/stream-test`, (route) =>
    route.fulfill({
      contentType: 'text/html; charset=utf-8',
      body: `<!doctype html><meta charset="utf-8"><title>streams</title><script>${script}</script>`,
    }),
  );
  const response = await recorded.page.goto(`${origin}/stream-test`);
  expect(response?.status()).toBe(200);
  return recorded;
}

const streams = (p: RecordedPage) => p.page.evaluate(() => window.streams);
const sseIds = async (p: RecordedPage) => (await streams(p)).sse.map((e) => e.id);

it("delivers to a browser EventSource and Apollo Client 4's HttpLink, and EventSource's own reconnect resumes with Last-Event-ID", async () => {
  const user = uniqueId('browser-streams');
  const jwt = token(user, { expiresInSec: 600 });
  const recorded = await openStreamPage(front!.url);
  await recorded.page.evaluate(([q, t]) => window.startEventSource(q, t), [QUERY, jwt] as const);
  await recorded.page.evaluate(([q, t]) => window.startApollo(q, t), [QUERY, jwt] as const);
  await waitForSubscriptions(a, 2);
  expect(a.app.stats().sessions.transports.sse.open).toBe(1);
  expect(a.app.stats().sessions.transports.multipart.open).toBe(1);

  const e1 = `e1-${user}`;
  await peer!.publish('quota.updated', { userId: user, quotaId: 'q' }, { messageId: e1 });
  await waitFor(
    async () => (await streams(recorded)).sse.length === 1 && (await streams(recorded)).apollo.length === 1,
    'both clients to receive e1',
  );
  const first = await streams(recorded);
  expect(first.sse).toEqual([{ id: e1, data: { data: { quotaChanged: { eventId: e1, kind: 'UPDATED' } } } }]);
  expect(first.apollo).toEqual([{ quotaChanged: { __typename: 'QuotaEvent', eventId: e1, kind: 'UPDATED' } }]);

  // A shuts down behind the front; the browser's reconnect waits at the front until we let it through to B.
  front!.hold();
  front!.target(b.app.port);
  await stopGateway(a);
  // The multipart stream ended with SHUTTING_DOWN (Apollo's HttpLink reports it; it does not reconnect).
  // Apollo Client 4 hands a transport error to `next` as `result.error`, then completes.
  await waitFor(async () => (await streams(recorded)).apolloErrors.length === 2, 'Apollo to report the end of its stream');
  expect((await streams(recorded)).apolloErrors).toEqual([
    'next: CombinedProtocolErrors: Going away: the server is shutting down; reconnect',
    'complete',
  ]);
  // The SSE stream ended without complete: EventSource is reconnecting by itself (held at the front).
  await waitFor(() => front!.held() >= 1, "the browser's own reconnect", 15_000);

  const bridged = b.app.stats().bridge.bridged;
  const missed = [`e2-${user}`, `e3-${user}`];
  for (const id of missed) await peer!.publish('quota.updated', { userId: user, quotaId: 'q' }, { messageId: id });
  await waitFor(() => b.app.stats().bridge.bridged === bridged + 2, 'B to bridge the events published meanwhile');
  expect(await sseIds(recorded)).toEqual([e1]);

  front!.release();
  await waitForSubscriptions(b, 1);
  await waitFor(async () => (await streams(recorded)).sse.length === 3, 'the missed events, replayed from Last-Event-ID');
  const e4 = `e4-${user}`;
  await peer!.publish('quota.updated', { userId: user, quotaId: 'q' }, { messageId: e4 });
  await waitFor(async () => (await streams(recorded)).sse.length >= 4, 'a live event after the resume');
  const final = await streams(recorded);
  // In order, none twice, none lost; two opens: the first and the browser's own reconnect.
  expect(final.sse.map((e) => e.id)).toEqual([e1, ...missed, e4]);
  expect(final.sseOpens).toBe(2);
  expect(b.app.stats().sessions.transports.sse.opened).toBe(1);
  expect(recorded.errors.filter((e) => !/net::ERR|EventSource/.test(e))).toEqual([]);
});

/**
 * The `frontend` scenario: the platform's page today polls its queries every 30 s; with push it
 * loads them once and keeps them current from events. For U users, each a real
 * `createRealtimeClient` (packages/client, as a page uses it: the dashboard's two queries watched
 * in Apollo's cache, the device subscription), this publishes device events through RabbitMQ and
 * measures publish -> the watched `devices` query showing the new status (the cache updating by
 * itself: what a React render then shows), and counts every HTTP request after the first load.
 * The same users' two queries are then timed over HTTP to price the polling side: an event waits
 * for the next poll (uniform over the 30 s interval, so on average 15 s) plus the queries'
 * latency, and every page makes 2 requests per poll, 240 per hour, whether anything changed.
 */
import { performance } from 'node:perf_hooks';
import type { Channel } from 'amqplib';
import type * as RealtimeClientPackage from '@cloudphone/realtime-client' with { 'resolution-mode': 'import' };
import WebSocket from 'ws';
import { signHs } from '../helpers/jwt';
import { Histogram } from './load';

export const POLL_INTERVAL_SEC = 30;
/** The dashboard's queries (devices and quota), as the platform's page polls them. */
const QUERIES_PER_POLL = 2;

export interface FrontendResult {
  readonly users: number;
  readonly events: number;
  readonly delivered: number;
  readonly pushToCacheMs: { readonly p50: number; readonly p99: number; readonly max: number };
  readonly pushRequestsAfterLoad: number;
  readonly windowSec: number;
  readonly pollQueryMs: { readonly p50: number; readonly p99: number };
  readonly pollTimeToScreenMs: { readonly mean: number; readonly p99: number };
  readonly requestsPerUserHour: { readonly polling: number; readonly push: number; readonly saved: number; readonly savedPercent: number };
}

interface Options {
  readonly port: number;
  readonly jwtSecret: string;
  readonly channel: Channel;
  readonly exchange: string;
  readonly users: number;
  readonly eventsPerUser: number;
  /** Seconds the pages stay open after the events, requests still counted. */
  readonly observeSec: number;
  readonly runTag: string;
  readonly log: (line: string) => void;
  /** Resolves once the server holds this many subscriptions. */
  readonly subscriptions: (count: number) => Promise<void>;
}

type ClientModule = typeof RealtimeClientPackage;

export async function frontendScenario(options: Options): Promise<FrontendResult> {
  // The package is an ES module; Node 20.19+ loads it from this CommonJS file with import().
  const client: ClientModule = await import('@cloudphone/realtime-client');
  const { users, runTag, log } = options;
  const httpUrl = `http://127.0.0.1:${options.port}/graphql`;
  const wsUrl = `ws://127.0.0.1:${options.port}/graphql`;
  const userId = (i: number) => `${runTag}-fe-${i}`;
  const deviceId = (i: number) => `${runTag}-fe-${i}-dev`;
  const publish = (routingKey: string, body: object, messageId: string) =>
    options.channel.publish(options.exchange, routingKey, Buffer.from(JSON.stringify(body)), {
      persistent: true,
      contentType: 'application/json',
      messageId,
    });

  // Every user has a device before its page loads.
  for (let i = 0; i < users; i++)
    publish(
      'device.created',
      { userId: userId(i), deviceId: deviceId(i), deviceName: `phone ${i}`, status: 'idle' },
      `${runTag}-fe-created-${i}`,
    );

  let requests = 0;
  let counting = false;
  const countingFetch: typeof fetch = (input, init) => {
    if (counting) requests++;
    return fetch(input, init);
  };
  const clients: ReturnType<ClientModule['createRealtimeClient']>[] = [];
  const statusOf = new Map<number, (status: string) => void>();
  const pending = new Map<string, { at: number; user: number }>();
  const histogram = new Histogram();
  let delivered = 0;
  try {
    for (let i = 0; i < users; i++) {
      const now = Math.floor(Date.now() / 1000);
      const token = signHs(options.jwtSecret, { sub: userId(i), roles: [], iat: now, exp: now + 7200 });
      const realtime = client.createRealtimeClient({
        httpUrl,
        wsUrl,
        getToken: () => token,
        webSocketImpl: WebSocket,
        fetch: countingFetch,
      });
      clients.push(realtime);
      // The device is in the read model before the page loads (device.created may still be on its way).
      for (let attempt = 0; attempt < 200; attempt++) {
        const loaded = await realtime.query({ query: client.DevicesDocument, variables: { first: 100 }, fetchPolicy: 'network-only' });
        if ((loaded.data?.devices.edges.length ?? 0) > 0) break;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      // The page: two queries watched in the cache, one subscription feeding it.
      const devices = realtime.watchQuery({ query: client.DevicesDocument, variables: { first: 100 } });
      let last = '';
      devices.subscribe((result) => {
        const status = result.data?.devices?.edges?.[0]?.node?.status;
        if (status && status !== last) {
          last = status;
          statusOf.get(i)?.(status);
        }
      });
      realtime.watchQuery({ query: client.QuotaDocument }).subscribe(() => undefined);
      realtime.subscribe({ query: client.DeviceStatusChangedDocument }).subscribe(() => undefined);
    }
    // Loaded: every page shows its device, and every socket is connected.
    await waitUntil(() => clients.every((c) => c.realtime.connectionState().status === 'connected'), 'every client connected', 60_000);
    const ready = new Set<number>();
    for (let i = 0; i < users; i++) statusOf.set(i, () => ready.add(i));
    await waitUntil(
      () => clients.every((c, i) => ready.has(i) || (c.cache.extract() as Record<string, unknown>)[`Device:${deviceId(i)}`] !== undefined),
      'every page loaded',
      60_000,
    );
    await options.subscriptions(users);
    counting = true;
    const started = performance.now();
    const events = users * options.eventsPerUser;
    for (let i = 0; i < users; i++) {
      statusOf.set(i, (status) => {
        const key = `${i}:${status}`;
        const sent = pending.get(key);
        if (!sent) return;
        pending.delete(key);
        histogram.record(performance.now() - sent.at);
        delivered++;
      });
    }
    for (let n = 0; n < options.eventsPerUser; n++) {
      const status = n % 2 === 0 ? 'RUNNING' : 'STOPPED';
      for (let i = 0; i < users; i++) {
        pending.set(`${i}:${status}`, { at: performance.now(), user: i });
        publish(n % 2 === 0 ? 'device.started' : 'device.stopped', { userId: userId(i), deviceId: deviceId(i) }, `${runTag}-fe-${n}-${i}`);
      }
      await waitUntil(() => [...pending.keys()].every((key) => !key.endsWith(status)), `round ${n} on every page`, 30_000).catch(
        (error: Error) => log(`  ${error.message}`),
      );
      for (const key of [...pending.keys()]) if (key.endsWith(status)) pending.delete(key);
    }
    // Then a page left open for one whole poll interval: what does it ask for when nothing happens?
    await new Promise((resolve) => setTimeout(resolve, options.observeSec * 1000));
    const windowSec = (performance.now() - started) / 1000;
    counting = false;

    // The polling side: the same two queries per user, over HTTP, timed.
    const queries = new Histogram();
    for (let i = 0; i < users; i++) {
      const t0 = performance.now();
      await Promise.all([
        clients[i]!.query({ query: client.DevicesDocument, variables: { first: 100 }, fetchPolicy: 'network-only' }),
        clients[i]!.query({ query: client.QuotaDocument, fetchPolicy: 'network-only' }),
      ]);
      queries.record(performance.now() - t0);
    }
    const polling = QUERIES_PER_POLL * (3600 / POLL_INTERVAL_SEC);
    const push = (requests / users) * (3600 / windowSec);
    return {
      users,
      events,
      delivered,
      pushToCacheMs: { p50: histogram.percentile(50), p99: histogram.percentile(99), max: histogram.max },
      pushRequestsAfterLoad: requests,
      windowSec,
      pollQueryMs: { p50: queries.percentile(50), p99: queries.percentile(99) },
      pollTimeToScreenMs: {
        mean: (POLL_INTERVAL_SEC * 1000) / 2 + queries.percentile(50),
        p99: POLL_INTERVAL_SEC * 1000 * 0.99 + queries.percentile(99),
      },
      requestsPerUserHour: { polling, push, saved: polling - push, savedPercent: ((polling - push) / polling) * 100 },
    };
  } finally {
    await Promise.all(clients.map((c) => c.realtime.dispose().catch(() => undefined)));
  }
}

async function waitUntil(check: () => boolean, what: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

export function frontendTable(r: FrontendResult): string[] {
  const f = (x: number, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : '-');
  return [
    `Frontend: ${r.users} pages (createRealtimeClient, devices + quota watched, deviceStatusChanged), ${r.events} events, ${r.delivered} on screen`,
    '',
    '| | push (this gateway) | polling every 30 s (today) |',
    '|:--|--:|--:|',
    `| time to screen p50 | ${f(r.pushToCacheMs.p50)} ms | ${f(r.pollTimeToScreenMs.mean / 1000, 2)} s (mean: half the interval + ${f(r.pollQueryMs.p50)} ms queries) |`,
    `| time to screen p99 | ${f(r.pushToCacheMs.p99)} ms | ${f(r.pollTimeToScreenMs.p99 / 1000, 2)} s |`,
    `| HTTP requests per user per hour | ${f(r.requestsPerUserHour.push, 2)} (${r.pushRequestsAfterLoad} in ${f(r.windowSec)} s after load) | ${f(r.requestsPerUserHour.polling, 0)} |`,
    '',
    `Saved: ${f(r.requestsPerUserHour.saved, 1)} requests per user per hour (${f(r.requestsPerUserHour.savedPercent, 1)} %); the first load (2 queries) is the same for both.`,
  ];
}

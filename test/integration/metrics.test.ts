/**
 * GET /metrics on the real services, driven by real traffic: sockets, subscriptions, the bridge's
 * outcomes, deliveries and their latency, the outbox backlog, and Redis reconnects (on a private
 * redis-server this test starts and whose clients it kills, never the shared one).
 */
import { partitionTopology } from '../../src/infra/amqp/partition-topology';
import Redis from 'ioredis';
import pg from 'pg';
import { QuotaChangedDocument, UpdateQuotaDocument } from '../generated/graphql';
import { openPlatformPeer, type PlatformPeer } from '../helpers/amqp';
import { disposeClients, http, subscribe, token, wsClient } from '../helpers/clients';
import { realServicesEnv, startGateway, stopGateway, stopGateways, waitForSubscriptions, type TestGateway } from '../helpers/gateway';
import { scrape } from '../helpers/metrics';
import { privateRedis, type PrivateRedis } from '../helpers/private-redis';
import { createTestDatabase, uniqueId, type TestDatabase } from '../helpers/services';
import { waitFor } from '../helpers/wait';

const P = 'cloudphone_realtime_';
let database: TestDatabase;
let gateway: TestGateway;
let peer: PlatformPeer;

beforeAll(async () => {
  database = await createTestDatabase();
  // The relay runs once at start and then only when a mutation nudges it, so a row written
  // behind its back stays in the backlog until the test's mutation.
  gateway = await startGateway(realServicesEnv(database.url, { OUTBOX_POLL_MS: '3600000' }));
  peer = await openPlatformPeer();
});

afterEach(async () => {
  await disposeClients();
  await waitForSubscriptions(gateway, 0);
});

afterAll(async () => {
  await disposeClients();
  await stopGateways();
  await peer?.close();
  await database?.drop();
});

it('serves the Prometheus text format with the default process metrics and typed families', async () => {
  const metrics = await scrape(gateway.app.url);
  expect(metrics.contentType).toMatch(/^text\/plain; version=0\.0\.4/);
  expect(metrics.value('process_cpu_user_seconds_total')).toBeGreaterThan(0);
  expect(metrics.value('nodejs_heap_size_used_bytes')).toBeGreaterThan(0);
  expect(metrics.value(`${P}websocket_connections`)).toBe(0);
  expect(metrics.value(`${P}amqp_reconnects_total`)).toBe(0);
  expect(metrics.value(`${P}redis_reconnects_total`)).toBe(0);
  expect(metrics.value(`${P}outbox_backlog`)).toBe(0);
  for (const [name, type] of [
    ['websocket_connections', 'gauge'],
    ['subscriptions', 'gauge'],
    ['events_consumed_total', 'counter'],
    ['events_processed_total', 'counter'],
    ['events_delivered_total', 'counter'],
    ['event_delivery_latency_seconds', 'histogram'],
    ['outbox_backlog', 'gauge'],
    ['outbox_published_total', 'counter'],
    ['redis_reconnects_total', 'counter'],
    ['amqp_reconnects_total', 'counter'],
  ]) {
    expect([name, metrics.type(`${P}${name}`)]).toEqual([name, type]);
  }
});

it('counts sockets, subscriptions, every bridge outcome, deliveries and their latency', async () => {
  const user = uniqueId('mila');
  const client = wsClient(gateway.wsUrl, { authorization: `Bearer ${token(user)}` });
  const second = wsClient(gateway.wsUrl, { authorization: `Bearer ${token(user)}` });
  const sub = subscribe(client.client, QuotaChangedDocument, {});
  const sub2 = subscribe(second.client, QuotaChangedDocument, {});
  await waitForSubscriptions(gateway, 2);
  const before = await scrape(gateway.app.url);
  expect(before.value(`${P}websocket_connections`)).toBe(2);
  expect(before.value(`${P}subscriptions`, { field: 'quotaChanged' })).toBe(2);
  const consumed0 = before.value(`${P}events_consumed_total`) ?? 0;

  // The queue is bound to the catalogue's routing keys only; an operator's extra binding is how
  // another key arrives (acknowledged and counted as ignored).
  // (Partitioned, the router queue is the one bound to the platform's exchange.)
  const { router } = partitionTopology(gateway.config.amqp.queue, gateway.config.amqp.partitions);
  await peer.channel.bindQueue(router, gateway.config.amqp.exchange, 'quota.archived');
  const occurredAt = new Date().toISOString();
  await peer.publish('quota.updated', { userId: user, occurredAt }, { messageId: `m-${user}` });
  await peer.publish('quota.updated', 'not json', { messageId: `bad-${user}` });
  await peer.publish('quota.archived', { userId: user }, { messageId: `other-${user}` });
  expect((await sub.next()).data?.quotaChanged.eventId).toBe(`m-${user}`);
  expect((await sub2.next()).data?.quotaChanged.eventId).toBe(`m-${user}`);

  let after = before;
  await waitFor(async () => {
    after = await scrape(gateway.app.url);
    return after.value(`${P}events_consumed_total`) === consumed0 + 3;
  }, 'three more consumed events in /metrics');
  expect(after.value(`${P}events_processed_total`, { outcome: 'bridged' })).toBe(1);
  expect(after.value(`${P}events_processed_total`, { outcome: 'dead_lettered' })).toBe(1);
  expect(after.value(`${P}events_processed_total`, { outcome: 'ignored' })).toBe(1);
  expect(after.value(`${P}events_processed_total`, { outcome: 'requeued' })).toBe(0);
  // One event, two subscribers: two deliveries, two latency observations.
  expect(after.value(`${P}events_delivered_total`, { field: 'quotaChanged' })).toBe(2);
  expect(after.value(`${P}event_delivery_latency_seconds_count`, { field: 'quotaChanged' })).toBe(2);
  const sum = after.value(`${P}event_delivery_latency_seconds_sum`, { field: 'quotaChanged' }) ?? -1;
  expect(sum).toBeGreaterThanOrEqual(0);
  expect(after.value(`${P}event_delivery_latency_seconds_bucket`, { le: '+Inf', field: 'quotaChanged' })).toBe(2);

  await client.dispose();
  await waitFor(async () => {
    const now = await scrape(gateway.app.url);
    return now.value(`${P}websocket_connections`) === 1 && now.value(`${P}subscriptions`, { field: 'quotaChanged' }) === 1;
  }, 'one socket and one subscription after a client left');
});

it('reports the outbox backlog and its drain through a mutation', async () => {
  const user = uniqueId('ola');
  const db = new pg.Client({ connectionString: database.url });
  await db.connect();
  try {
    // A row the relay has not seen (it polls hourly here): the backlog counts it.
    await db.query(`INSERT INTO outbox_event (id, routing_key, payload) VALUES (gen_random_uuid(), 'quota.renewed', $1::jsonb)`, [
      JSON.stringify({ userId: user }),
    ]);
  } finally {
    await db.end();
  }
  const published0 = (await scrape(gateway.app.url)).value(`${P}outbox_published_total`) ?? 0;
  expect((await scrape(gateway.app.url)).value(`${P}outbox_backlog`)).toBe(1);

  const client = wsClient(gateway.wsUrl, { authorization: `Bearer ${token(user)}` });
  const sub = subscribe(client.client, QuotaChangedDocument, {});
  await waitForSubscriptions(gateway, 1);
  const updated = await http(gateway.httpUrl, UpdateQuotaDocument, {
    token: token(uniqueId('admin'), { roles: ['admin'] }),
    variables: { userId: user, input: { limits: { maxDevices: 4 } } },
  });
  expect(updated.body.errors).toBeUndefined();
  // The mutation nudges the relay, which publishes the waiting row first, then its own.
  const types = [(await sub.next()).data?.quotaChanged.type, (await sub.next()).data?.quotaChanged.type];
  expect(types).toEqual(['quota.renewed', 'quota.updated']);
  await waitFor(async () => {
    const now = await scrape(gateway.app.url);
    return now.value(`${P}outbox_backlog`) === 0 && now.value(`${P}outbox_published_total`) === published0 + 2;
  }, 'the backlog to drain in /metrics');
});

describe('Redis reconnects', () => {
  let redis: PrivateRedis | undefined;
  let privateGateway: TestGateway | undefined;

  afterAll(async () => {
    // Before its Redis goes away, or its client would keep reconnecting to nothing.
    if (privateGateway) await stopGateway(privateGateway);
    await redis?.stop();
  });

  it('counts a reconnect when a Redis connection comes back', async () => {
    redis = await privateRedis();
    await redis.start();
    privateGateway = await startGateway(realServicesEnv(database.url, { REDIS_URL: redis.url }));
    const url = privateGateway.app.url;
    expect((await scrape(url)).value(`${P}redis_reconnects_total`)).toBe(0);
    const admin = new Redis(redis.port, '127.0.0.1');
    try {
      // Kill exactly the gateway's two connections, found by their client names.
      const list = (await admin.call('CLIENT', 'LIST')) as string;
      const ids = list
        .split('\n')
        .filter((line) => / name=cloudphone-realtime\/(publisher|subscriber)\//.test(line))
        .map((line) => /^id=(\d+)/.exec(line)?.[1] as string);
      expect(ids).toHaveLength(2);
      for (const id of ids) expect(await admin.call('CLIENT', 'KILL', 'ID', id)).toBe(1);
    } finally {
      admin.disconnect();
    }
    await waitFor(async () => (await scrape(url)).value(`${P}redis_reconnects_total`) === 2, 'both Redis connections to reconnect');
  });
});

/**
 * quotaChanged end to end on the real services: RabbitMQ (the topic exchange) -> gateway bridge ->
 * Redis pub/sub -> graphql-ws, and updateQuota -> Prisma + outbox -> relay -> RabbitMQ -> ... .
 */
import { partitionTopology } from '../../src/infra/amqp/partition-topology';
import Redis from 'ioredis';
import pg from 'pg';
import { QuotaChangedDocument, QuotaDocument, UpdateQuotaDocument } from '../generated/graphql';
import { openPlatformPeer, type PlatformPeer } from '../helpers/amqp';
import { disposeClients, http, subscribe, token, wsClient } from '../helpers/clients';
import { realServicesEnv, startGateway, stopGateway, stopGateways, waitForSubscriptions, type TestGateway } from '../helpers/gateway';
import { createTestDatabase, TEST_REDIS_URL, uniqueId, type TestDatabase } from '../helpers/services';
import { waitFor } from '../helpers/wait';

let database: TestDatabase;
let gateway: TestGateway;
let peer: PlatformPeer;
let redis: Redis;

beforeAll(async () => {
  database = await createTestDatabase();
  gateway = await startGateway(realServicesEnv(database.url));
  peer = await openPlatformPeer();
  redis = new Redis(TEST_REDIS_URL);
});

afterEach(async () => {
  await disposeClients();
  // The next test counts its own subscriptions from zero.
  await subscriptions(0);
});

afterAll(async () => {
  await disposeClients();
  await stopGateways();
  await peer?.close();
  redis?.disconnect();
  await database?.drop();
});

/** Waits until the gateway counts `n` live quotaChanged subscriptions (Redis SUBSCRIBE confirmed). */
const subscriptions = (n: number) => waitForSubscriptions(gateway, n);

const NULL_LIMITS = {
  maxDevices: null,
  maxConcurrentDevices: null,
  maxCpuCoresPerDevice: null,
  maxMemoryMBPerDevice: null,
  maxStorageGBPerDevice: null,
  totalCpuCores: null,
  totalMemoryGB: null,
  totalStorageGB: null,
  maxBandwidthMbps: null,
  monthlyTrafficGB: null,
  maxUsageHoursPerDay: null,
  maxUsageHoursPerMonth: null,
};
const NULL_USAGE = {
  currentDevices: null,
  currentConcurrentDevices: null,
  usedCpuCores: null,
  usedMemoryGB: null,
  usedStorageGB: null,
  currentBandwidthMbps: null,
  monthlyTrafficUsedGB: null,
  todayUsageHours: null,
  monthlyUsageHours: null,
};

describe('platform event -> subscriber', () => {
  it('delivers a quota.updated published to the exchange to that user, normalized, and to no other user', async () => {
    const alice = uniqueId('alice');
    const bob = uniqueId('bob');
    const aliceClient = wsClient(gateway.wsUrl, { authorization: `Bearer ${token(alice)}` });
    const bobClient = wsClient(gateway.wsUrl, { authorization: `Bearer ${token(bob)}` });
    const aliceSub = subscribe(aliceClient.client, QuotaChangedDocument, {});
    const bobSub = subscribe(bobClient.client, QuotaChangedDocument, {});
    await subscriptions(2);

    await peer.publish(
      'quota.updated',
      {
        userId: alice,
        quotaId: 'quota-1',
        type: 'updated',
        limits: {
          maxDevices: 10,
          maxConcurrentDevices: 5,
          totalCpuCores: 32,
          totalMemoryGB: 64,
          totalStorageGB: 500,
          monthlyTrafficGB: 1000,
        },
        usage: { currentDevices: 3, usedCpuCores: 8, usedMemoryGB: 16, usedStorageGB: 120.5, monthlyTrafficUsedGB: 42 },
        status: 'active',
        timestamp: '2026-11-24T10:00:00.000Z',
        email: 'alice@example.com',
        _trace: { traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' },
      },
      { messageId: `msg-${alice}` },
    );

    const received = await aliceSub.next();
    expect(received.errors).toBeUndefined();
    expect(received.data).toEqual({
      quotaChanged: {
        eventId: `msg-${alice}`,
        type: 'quota.updated',
        userId: alice,
        occurredAt: '2026-11-24T10:00:00.000Z',
        quotaId: 'quota-1',
        kind: 'UPDATED',
        limits: {
          ...NULL_LIMITS,
          maxDevices: 10,
          maxConcurrentDevices: 5,
          totalCpuCores: 32,
          totalMemoryGB: 64,
          totalStorageGB: 500,
          monthlyTrafficGB: 1000,
        },
        usage: { ...NULL_USAGE, currentDevices: 3, usedCpuCores: 8, usedMemoryGB: 16, usedStorageGB: 120.5, monthlyTrafficUsedGB: 42 },
        usagePercent: null,
        severity: null,
        status: 'ACTIVE',
        validUntil: null,
      },
    });
    expect(JSON.stringify(received)).not.toMatch(/email|_trace|traceparent/);

    // Bob's first event is his own: Alice's was never delivered to him.
    await peer.publish('quota.alert', { userId: bob, usagePercent: 95, severity: 'critical' }, { messageId: `msg-${bob}` });
    const bobReceived = await bobSub.next();
    expect(bobReceived.data?.quotaChanged).toMatchObject({ eventId: `msg-${bob}`, userId: bob, kind: 'ALERT', usagePercent: 95 });
    // And Alice's next event is her own, not Bob's.
    await peer.publish('quota.deleted', { userId: alice }, { messageId: `del-${alice}` });
    expect((await aliceSub.next()).data?.quotaChanged).toMatchObject({ eventId: `del-${alice}`, userId: alice, kind: 'DELETED' });
  });

  it("gives an administrator who omits userId every user's events, and a chosen user's with userId", async () => {
    const admin = uniqueId('admin');
    const carol = uniqueId('carol');
    const dave = uniqueId('dave');
    const client = wsClient(gateway.wsUrl, { token: token(admin, { roles: ['admin'] }) });
    const all = subscribe(client.client, QuotaChangedDocument, {});
    const onlyDave = subscribe(client.client, QuotaChangedDocument, { userId: dave });
    await subscriptions(2);

    await peer.publish('quota.renewed', { userId: carol, validUntil: '2027-01-01T00:00:00Z' }, { messageId: `r-${carol}` });
    await peer.publish('quota.renewed', { userId: dave }, { messageId: `r-${dave}` });

    // Order is per user (docs/cluster.md): two users' events may reach the administrator either way round.
    const both = [(await all.next()).data?.quotaChanged, (await all.next()).data?.quotaChanged];
    expect(both.find((event) => event?.userId === carol)).toMatchObject({ userId: carol, validUntil: '2027-01-01T00:00:00.000Z' });
    expect(both.find((event) => event?.userId === dave)).toMatchObject({ userId: dave, eventId: `r-${dave}` });
    expect((await onlyDave.next()).data?.quotaChanged).toMatchObject({ userId: dave, eventId: `r-${dave}` });
    expect(onlyDave.pending()).toBe(0);
  });
});

describe('malformed messages', () => {
  it('dead-letters not-JSON and missing-userId messages with their reason while the next good message arrives', async () => {
    const erin = uniqueId('erin');
    const client = wsClient(gateway.wsUrl, { authorization: `Bearer ${token(erin)}` });
    const sub = subscribe(client.client, QuotaChangedDocument, {});
    await subscriptions(1);
    const before = gateway.app.stats().bridge.deadLettered;

    await peer.publish('quota.updated', Buffer.from('{"userId": "oops'), { messageId: `bad-json-${erin}` });
    await peer.publish('quota.updated', { quotaId: 'q', usage: {} }, { messageId: `no-user-${erin}` });
    await peer.publish('quota.deducted', { userId: erin, usage: { currentDevices: 4 } }, { messageId: `good-${erin}` });

    const good = await sub.next();
    expect(good.data?.quotaChanged).toMatchObject({ eventId: `good-${erin}`, kind: 'DEDUCTED', usage: { currentDevices: 4 } });

    const dlq = gateway.config.amqp.deadLetterQueue;
    const notJson = await peer.take(dlq, (m) => m.properties.messageId === `bad-json-${erin}`, 'the not-JSON dead letter');
    expect(notJson.properties.headers?.['x-rejection-reason']).toBe('not JSON');
    expect(notJson.properties.headers?.['x-original-routing-key']).toBe('quota.updated');
    expect(notJson.content.toString()).toBe('{"userId": "oops');
    const noUser = await peer.take(dlq, (m) => m.properties.messageId === `no-user-${erin}`, 'the missing-userId dead letter');
    expect(noUser.properties.headers?.['x-rejection-reason']).toBe('missing userId');
    expect(gateway.app.stats().bridge.deadLettered).toBe(before + 2);
  });
});

describe('mutation -> outbox -> RabbitMQ -> Redis -> subscriber', () => {
  it("delivers updateQuota's quota.updated through the broker, and the query agrees with the push", async () => {
    const frank = uniqueId('frank');
    const admin = token(uniqueId('admin'), { roles: ['admin'] });
    const wiretap = await peer.tap('quota.updated');
    const client = wsClient(gateway.wsUrl, { authorization: `Bearer ${token(frank)}` });
    const sub = subscribe(client.client, QuotaChangedDocument, {});
    await subscriptions(1);

    const result = await http(gateway.httpUrl, UpdateQuotaDocument, {
      token: admin,
      variables: { userId: frank, input: { limits: { maxDevices: 7, totalMemoryGB: 32 }, status: 'ACTIVE' } },
    });
    expect(result.body.errors).toBeUndefined();
    const quota = result.body.data!.updateQuota;
    expect(quota).toMatchObject({ userId: frank, version: 1, limits: { maxDevices: 7, totalMemoryGB: 32 } });

    const pushed = (await sub.next()).data!.quotaChanged;
    expect(pushed).toMatchObject({
      type: 'quota.updated',
      kind: 'UPDATED',
      userId: frank,
      quotaId: quota.id,
      status: 'ACTIVE',
      limits: { maxDevices: 7, totalMemoryGB: 32 },
    });

    // It went through RabbitMQ: the broker carried it, persistent, with messageId = the event id.
    const onWire = await peer.take(wiretap, (m) => m.properties.messageId === pushed.eventId, 'the outbox event on the exchange');
    expect(onWire.properties.contentType).toBe('application/json');
    expect(onWire.properties.deliveryMode).toBe(2);
    expect(JSON.parse(onWire.content.toString())).toMatchObject({ eventId: pushed.eventId, eventType: 'quota.updated' });

    // The outbox row is the same event, marked published.
    const db = new pg.Client({ connectionString: database.url });
    await db.connect();
    try {
      const { rows } = await db.query<{ routing_key: string; published_at: Date | null }>(
        'SELECT routing_key, published_at FROM outbox_event WHERE id = $1',
        [pushed.eventId],
      );
      expect(rows).toHaveLength(1);
      expect(rows[0]?.routing_key).toBe('quota.updated');
      expect(rows[0]?.published_at).not.toBeNull();
    } finally {
      await db.end();
    }

    const read = await http(gateway.httpUrl, QuotaDocument, { token: token(frank), variables: {} });
    expect(read.body.data?.quota).toMatchObject({ id: quota.id, limits: pushed.limits, status: pushed.status });
  });
});

describe('authentication and authorization on the socket', () => {
  it.each([
    ['no token', undefined],
    ['an empty payload', {}],
    ['a malformed token', { authorization: 'Bearer not-a-jwt' }],
    ['a token signed with another secret', { authorization: `Bearer ${token('mallory', { secret: 'another-secret' })}` }],
    ['an expired token', { authorization: `Bearer ${token('mallory', { expiresInSec: -60 })}` }],
  ])('closes a socket with %s with 4403', async (_name, params) => {
    const client = wsClient(gateway.wsUrl, params);
    await expect(client.closed).resolves.toBe(4403);
  });

  it('closes the socket with 4403 when the token expires while it is open', async () => {
    const client = wsClient(gateway.wsUrl, { authorization: `Bearer ${token(uniqueId('grace'), { expiresInSec: 2 })}` });
    await client.connected;
    await expect(client.closed).resolves.toBe(4403);
  });

  it("answers FORBIDDEN for another user's events and keeps the socket open and delivering", async () => {
    const heidi = uniqueId('heidi');
    const client = wsClient(gateway.wsUrl, { Authorization: `Bearer ${token(heidi)}` });
    const own = subscribe(client.client, QuotaChangedDocument, {});
    await subscriptions(1);

    const other = subscribe(client.client, QuotaChangedDocument, { userId: uniqueId('ivan') });
    const denied = await other.next();
    expect(denied.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
    expect(denied.data ?? null).toBeNull();

    await peer.publish('quota.restored', { userId: heidi }, { messageId: `own-${heidi}` });
    expect((await own.next()).data?.quotaChanged).toMatchObject({ eventId: `own-${heidi}`, kind: 'RESTORED' });
  });

  it('answers BAD_USER_INPUT for variables of the wrong type, and keeps the socket open', async () => {
    const client = wsClient(gateway.wsUrl, { authorization: `Bearer ${token(uniqueId('ned'))}` });
    const bad = subscribe(client.client, QuotaChangedDocument, { userId: { $ne: null } as unknown as string });
    const result = await bad.next();
    expect(result.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    const good = subscribe(client.client, '{ __typename }');
    expect((await good.next()).data).toEqual({ __typename: 'Query' });
  });
});

describe('subscriptions release their Redis channel', () => {
  it('returns PUBSUB NUMSUB to zero after clients come and go, with one SUBSCRIBE per topic meanwhile', async () => {
    const judy = uniqueId('judy');
    const topic = `${gateway.config.redis.topicPrefix}quota:user:${judy}`;
    const numsub = async () => Number(((await redis.call('PUBSUB', 'NUMSUB', topic)) as [string, number])[1]);

    const clients = Array.from({ length: 5 }, () => wsClient(gateway.wsUrl, { authorization: `Bearer ${token(judy)}` }));
    const subs = clients.map((c) => subscribe(c.client, QuotaChangedDocument, {}));
    await subscriptions(5);
    expect(await numsub()).toBe(1);

    await peer.publish('quota.updated', { userId: judy }, { messageId: `fan-${judy}` });
    for (const s of subs) expect((await s.next()).data?.quotaChanged.eventId).toBe(`fan-${judy}`);

    subs[0]!.unsubscribe();
    await Promise.all(clients.slice(1).map((c) => c.dispose()));
    await subscriptions(0);
    await waitFor(async () => (await numsub()) === 0, 'Redis to drop the channel');
  });
});

describe('HTTP', () => {
  it('answers introspection and __typename without a token, and UNAUTHENTICATED for data', async () => {
    const anonymous = await http(gateway.httpUrl, '{ __typename __schema { queryType { name } } }');
    expect(anonymous.body).toEqual({ data: { __typename: 'Query', __schema: { queryType: { name: 'Query' } } } });
    const data = await http(gateway.httpUrl, QuotaDocument, { variables: {} });
    expect(data.body.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
  });

  it('rejects a bad token with 401 UNAUTHENTICATED', async () => {
    const result = await http(gateway.httpUrl, QuotaDocument, { variables: {}, authorization: 'Bearer nope' });
    expect(result.status).toBe(401);
    expect(result.body.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
  });

  it('lets only administrators updateQuota, validates input, and never sends a stack trace', async () => {
    const user = uniqueId('kim');
    const asUser = await http(gateway.httpUrl, UpdateQuotaDocument, {
      token: token(user),
      variables: { userId: user, input: { limits: { maxDevices: 100 } } },
    });
    expect(asUser.body.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');

    const admin = token(uniqueId('admin'), { roles: ['super_admin'] });
    const negative = await http(gateway.httpUrl, UpdateQuotaDocument, {
      token: admin,
      variables: { userId: user, input: { limits: { maxDevices: -1 } } },
    });
    expect(negative.body.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    const empty = await http(gateway.httpUrl, UpdateQuotaDocument, { token: admin, variables: { userId: user, input: {} } });
    expect(empty.body.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    expect(JSON.stringify([asUser.body, negative.body, empty.body])).not.toMatch(/stacktrace|at .*\.js/);

    const read = await http(gateway.httpUrl, QuotaDocument, { token: token(user), variables: {} });
    expect(read.body.data?.quota).toBeNull();
  });

  it('answers a malformed or oversized body with a JSON error, never an HTML page', async () => {
    const malformed = await fetch(gateway.httpUrl, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"query":' });
    expect(malformed.status).toBe(400);
    expect(await malformed.json()).toEqual({ errors: [{ message: 'Malformed request body', extensions: { code: 'BAD_REQUEST' } }] });
    const huge = await fetch(gateway.httpUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query: '{ __typename }', variables: { pad: 'x'.repeat(gateway.config.graphql.bodyLimitBytes) } }),
    });
    expect(huge.status).toBe(413);
    expect(await huge.json()).toEqual({ errors: [{ message: 'Request body too large', extensions: { code: 'BAD_REQUEST' } }] });
  });

  it('reports liveness and per-dependency readiness', async () => {
    const live = await fetch(`${gateway.app.url}/healthz`);
    expect(live.status).toBe(200);
    const ready = await fetch(`${gateway.app.url}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({
      status: 'ready',
      dependencies: {
        database: { status: 'up', mode: 'postgres' },
        pubsub: { status: 'up', mode: 'redis' },
        eventBus: { status: 'up', mode: 'amqp' },
      },
    });
  });
});

describe('graceful stop', () => {
  it('closes sockets with 1001, stops serving and leaves the queue to the other instances', async () => {
    // A second instance on the same queue: stopping it must not disturb the first.
    const { queue, deadLetterQueue, deadLetterExchange } = gateway.config.amqp;
    const second = await startGateway(
      realServicesEnv(database.url, {
        AMQP_QUEUE: queue,
        AMQP_DLQ: deadLetterQueue,
        AMQP_DLX: deadLetterExchange,
        REDIS_TOPIC_PREFIX: gateway.config.redis.topicPrefix,
      }),
    );
    const client = wsClient(second.wsUrl, { authorization: `Bearer ${token(uniqueId('olga'))}` });
    await client.connected;
    // Partitioned, every instance consumes the router queue (one of them active).
    const { router } = partitionTopology(queue, gateway.config.amqp.partitions);
    expect((await peer.channel.checkQueue(router)).consumerCount).toBe(2);
    await stopGateway(second);
    await expect(client.closed).resolves.toBe(1001);
    expect((await peer.channel.checkQueue(router)).consumerCount).toBe(1);
    await expect(fetch(`${second.app.url}/healthz`)).rejects.toThrow();

    const peggy = uniqueId('peggy');
    const survivor = wsClient(gateway.wsUrl, { authorization: `Bearer ${token(peggy)}` });
    const sub = subscribe(survivor.client, QuotaChangedDocument, {});
    await subscriptions(1);
    await peer.publish('quota.updated', { userId: peggy }, { messageId: `after-stop-${peggy}` });
    expect((await sub.next()).data?.quotaChanged.eventId).toBe(`after-stop-${peggy}`);
  });
});

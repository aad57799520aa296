/**
 * Routing and fan-out on the real services: per-user topics, administrators' every-user stream,
 * deviceId narrowing, one Redis SUBSCRIBE per topic per instance released when clients go, and
 * two instances on one queue delivering each event exactly once to every subscriber.
 */
import Redis from 'ioredis';
import { AppInstalledDocument, DeviceStatusChangedDocument, QuotaChangedDocument } from '../generated/graphql';
import { openPlatformPeer, type PlatformPeer } from '../helpers/amqp';
import { disposeClients, subscribe, token, wsClient, type Subscription } from '../helpers/clients';
import { realServicesEnv, startGateway, stopGateways, waitForSubscriptions, type TestGateway } from '../helpers/gateway';
import { createTestDatabase, TEST_REDIS_URL, uniqueId, type TestDatabase } from '../helpers/services';
import { waitFor } from '../helpers/wait';

let database: TestDatabase;
let gateway: TestGateway;
let peer: PlatformPeer;
let redis: Redis;
/** This suite's own exchange: no other suite's events reach its queues, so counts are exact. */
const exchange = uniqueId('cpr-test-x');

beforeAll(async () => {
  database = await createTestDatabase();
  gateway = await startGateway(realServicesEnv(database.url, { AMQP_EXCHANGE: exchange, ...FAN_OUT_LIMITS }));
  peer = await openPlatformPeer();
  redis = new Redis(TEST_REDIS_URL);
});

afterEach(async () => {
  await disposeClients();
  // Sockets close asynchronously: the next test starts from no subscriptions and no channels.
  await waitFor(() => Object.values(gateway.app.stats().subscriptions).every((n) => n === 0), 'subscriptions released');
  await waitFor(async () => Object.keys(await redisChannels(gateway.config.redis.topicPrefix)).length === 0, 'channels released');
});

afterAll(async () => {
  await disposeClients();
  await stopGateways();
  await peer?.channel.deleteExchange(exchange).catch(() => undefined);
  await peer?.close();
  redis?.disconnect();
  await database?.drop();
});

/**
 * This suite counts deliveries one by one: no coalescing of state-like events, and room for its
 * 25 sockets of one user (the defaults are 100 ms and 10 sockets; see the storm and security suites).
 */
const FAN_OUT_LIMITS = { EVENT_COALESCE_MS: '0', WS_MAX_SOCKETS_PER_USER: '100' };

const publish = (key: string, body: unknown, messageId: string) => peer.publish(key, body, { messageId, exchange });
const bearer = (sub: string, roles?: string[]) => ({ authorization: `Bearer ${token(sub, { roles })}` });

/** The channels of this gateway's prefix that Redis holds, and the subscribers of each. */
/**
 * The channels subscriptions hold under `prefix`. Every instance also holds one channel for its
 * whole life, the revocation notices (`<prefix>sessions-revoked`): not a subscription's, left out.
 */
async function redisChannels(prefix: string): Promise<Record<string, number>> {
  const channels = ((await redis.pubsub('CHANNELS', `${prefix}*`)) as string[]).filter(
    (channel) => channel !== `${prefix}sessions-revoked`,
  );
  if (channels.length === 0) return {};
  const counts = (await redis.pubsub('NUMSUB', ...channels)) as (string | number)[];
  const result: Record<string, number> = {};
  for (let i = 0; i < counts.length; i += 2) result[counts[i] as string] = Number(counts[i + 1]);
  return result;
}

/** Pattern subscriptions (administrators' every-user topics) held by this gateway's subscriber connection(s). */
async function patternSubscriptions(g: TestGateway): Promise<number> {
  const list = (await redis.client('LIST')) as string;
  const prefix = g.config.redis.topicPrefix.replace(/[^\w:.-]/g, '_');
  return list
    .split('\n')
    .filter((line) => line.includes(`name=cloudphone-realtime/subscriber/${prefix}/`))
    .reduce((sum, line) => sum + Number(/ psub=(\d+)/.exec(line)?.[1] ?? 0), 0);
}

describe('who receives what', () => {
  it("gives an administrator without userId every user's events, with userId only that user's", async () => {
    const [alice, bob] = [uniqueId('alice'), uniqueId('bob')];
    const everyone = subscribe(wsClient(gateway.wsUrl, bearer('ops', ['admin'])).client, DeviceStatusChangedDocument, {});
    const onlyBob = subscribe(wsClient(gateway.wsUrl, bearer('ops2', ['super_admin'])).client, DeviceStatusChangedDocument, {
      userId: bob,
    });
    await waitForSubscriptions(gateway, 2, 'deviceStatusChanged');
    await publish('device.started', { userId: alice, deviceId: 'a1' }, `a-${alice}`);
    await publish('device.stopped', { userId: bob, deviceId: 'b1' }, `b-${bob}`);
    expect((await everyone.next()).data?.deviceStatusChanged).toMatchObject({ userId: alice, status: 'RUNNING' });
    expect((await everyone.next()).data?.deviceStatusChanged).toMatchObject({ userId: bob, status: 'STOPPED' });
    expect((await onlyBob.next()).data?.deviceStatusChanged).toMatchObject({ eventId: `b-${bob}`, userId: bob });
    expect(onlyBob.pending()).toBe(0);
  });

  it("refuses a user another user's events with FORBIDDEN and keeps the socket open", async () => {
    const [mallory, victim] = [uniqueId('mallory'), uniqueId('victim')];
    const socket = wsClient(gateway.wsUrl, bearer(mallory));
    const denied = subscribe(socket.client, QuotaChangedDocument, { userId: victim });
    const result = await denied.next();
    expect(result.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
    // The same socket still serves the caller's own events.
    const own = subscribe(socket.client, QuotaChangedDocument, { userId: mallory });
    await waitForSubscriptions(gateway, 1);
    await publish('quota.updated', { userId: victim }, `v-${victim}`);
    await publish('quota.updated', { userId: mallory }, `m-${mallory}`);
    expect((await own.next()).data?.quotaChanged).toMatchObject({ eventId: `m-${mallory}` });
    expect(own.pending()).toBe(0);
  });

  it('narrows device and app events to one device with deviceId', async () => {
    const user = uniqueId('narrow');
    const client = wsClient(gateway.wsUrl, bearer(user)).client;
    const d1 = subscribe(client, DeviceStatusChangedDocument, { deviceId: 'd1' });
    const apps = subscribe(client, AppInstalledDocument, { deviceId: 'd1' });
    const all = subscribe(client, DeviceStatusChangedDocument, {});
    await waitForSubscriptions(gateway, 2, 'deviceStatusChanged');
    await waitForSubscriptions(gateway, 1, 'appInstalled');
    await publish('device.started', { userId: user, deviceId: 'd2' }, `d2-${user}`);
    await publish('app.installed', { userId: user, deviceId: 'd2', appId: 'x' }, `a2-${user}`);
    await publish('device.started', { userId: user, deviceId: 'd1' }, `d1-${user}`);
    await publish('app.installed', { userId: user, deviceId: 'd1', appId: 'x' }, `a1-${user}`);
    expect((await d1.next()).data?.deviceStatusChanged).toMatchObject({ eventId: `d1-${user}`, deviceId: 'd1' });
    expect((await apps.next()).data?.appInstalled).toMatchObject({ eventId: `a1-${user}`, deviceId: 'd1' });
    expect((await all.next()).data?.deviceStatusChanged).toMatchObject({ deviceId: 'd2' });
    expect((await all.next()).data?.deviceStatusChanged).toMatchObject({ deviceId: 'd1' });
    expect(d1.pending() + apps.pending()).toBe(0);
  });
});

describe('shared execution', () => {
  it('executes each event once per distinct selection, however many sockets receive it', async () => {
    const same = Array.from({ length: 11 }, (_, i) =>
      subscribe(wsClient(gateway.wsUrl, bearer(`exec-admin-${i}`, ['admin'])).client, QuotaChangedDocument, {}),
    );
    // Two equal operations on one socket: the shared payload goes out under each operation's id.
    const twice = wsClient(gateway.wsUrl, bearer('exec-twice', ['admin'])).client;
    same.push(subscribe(twice, QuotaChangedDocument, {}), subscribe(twice, QuotaChangedDocument, {}));
    const narrow = 'subscription Narrow { quotaChanged { eventId kind } }';
    const other = Array.from({ length: 3 }, (_, i) =>
      subscribe<{ quotaChanged: { eventId: string; kind: string } }, Record<string, never>>(
        wsClient(gateway.wsUrl, bearer(`exec-other-${i}`, ['admin'])).client,
        narrow,
        {},
      ),
    );
    await waitForSubscriptions(gateway, 16);
    const before = gateway.app.stats().ws.payloadExecutions;
    const compiledBefore = gateway.app.stats().ws.payloadsCompiled;
    const users = Array.from({ length: 5 }, (_, i) => uniqueId(`exec-user-${i}`));
    for (const user of users) await publish('quota.updated', { userId: user, quotaId: `q-${user}` }, `x-${user}`);
    // Order is kept per user; these are five users, so compare per subscriber as sorted lists.
    const byId = <T extends { eventId: string }>(list: T[]) => [...list].sort((a, b) => a.eventId.localeCompare(b.eventId));
    const expected = byId(users.map((user) => ({ eventId: `x-${user}`, userId: user, quotaId: `q-${user}`, kind: 'UPDATED' })));
    for (const sub of same) {
      const got = [];
      for (let i = 0; i < users.length; i++) got.push((await sub.next()).data!.quotaChanged);
      expect(byId(got)).toMatchObject(expected);
    }
    for (const sub of other) {
      const got = [];
      for (let i = 0; i < users.length; i++) got.push((await sub.next()).data!.quotaChanged);
      expect(byId(got)).toEqual(expected.map(({ eventId, kind }) => ({ eventId, kind })));
    }
    // 5 events x 2 selections, not 5 x 16 subscriptions.
    expect(gateway.app.stats().ws.payloadExecutions - before).toBe(10);
    // All ten by graphql-jit's compiled form of the two selections (docs/decisions/0602).
    expect(gateway.app.stats().ws.payloadsCompiled - compiledBefore).toBe(10);
    expect([...same, ...other].reduce((n, sub) => n + sub.pending(), 0)).toBe(0);
  });
});

describe('Redis subscriptions', () => {
  it("names every one of the instance's Redis connections, so operators can find them in CLIENT LIST", async () => {
    const prefix = gateway.config.redis.topicPrefix.replace(/[^\w:.-]/g, '_');
    const list = (await redis.client('LIST')) as string;
    const roles = list
      .split('\n')
      .map((line) => new RegExp(`name=cloudphone-realtime/([\\w-]+)/${prefix}/pid${process.pid} `).exec(line)?.[1])
      .filter((role): role is string => role !== undefined)
      .sort();
    expect(roles).toEqual(['publisher', 'rate-limit', 'revocations', 'revocations-sub', 'socket-registry', 'subscriber']);
  });

  it('holds one SUBSCRIBE per topic however many subscribers share it, and releases all when they go', async () => {
    const prefix = gateway.config.redis.topicPrefix;
    expect(await redisChannels(prefix)).toEqual({});
    expect(await patternSubscriptions(gateway)).toBe(0);

    const user = uniqueId('shared');
    const subs: Subscription<unknown>[] = [];
    for (let i = 0; i < 25; i++) subs.push(subscribe(wsClient(gateway.wsUrl, bearer(user)).client, QuotaChangedDocument, {}));
    for (let i = 0; i < 5; i++)
      subs.push(subscribe(wsClient(gateway.wsUrl, bearer(`admin-${i}`, ['admin'])).client, QuotaChangedDocument, {}));
    await waitForSubscriptions(gateway, 30);
    expect(await redisChannels(prefix)).toEqual({ [`${prefix}quota:user:${user}`]: 1 });
    expect(await patternSubscriptions(gateway)).toBe(1);

    await publish('quota.updated', { userId: user }, `shared-${user}`);
    for (const sub of subs)
      expect(((await sub.next()) as { data: { quotaChanged: { eventId: string } } }).data.quotaChanged.eventId).toBe(`shared-${user}`);

    // Half of the user's subscribers leave: the shared channel stays, and the rest still receive.
    subs.slice(0, 12).forEach((s) => s.unsubscribe());
    await waitForSubscriptions(gateway, 18);
    expect(await redisChannels(prefix)).toEqual({ [`${prefix}quota:user:${user}`]: 1 });
    await publish('quota.deleted', { userId: user }, `still-${user}`);
    for (const sub of subs.slice(12))
      expect(((await sub.next()) as { data: { quotaChanged: { eventId: string } } }).data.quotaChanged.eventId).toBe(`still-${user}`);
    // The rest leave by closing their sockets.
    await disposeClients();
    await waitForSubscriptions(gateway, 0);
    await waitFor(async () => Object.keys(await redisChannels(prefix)).length === 0, 'Redis channels back to none');
    await waitFor(async () => (await patternSubscriptions(gateway)) === 0, 'pattern subscriptions back to none');
  });

  it('returns to its baseline after 200 clients of 40 users came and went in waves', async () => {
    const prefix = gateway.config.redis.topicPrefix;
    const users = Array.from({ length: 40 }, (_, i) => uniqueId(`wave${i}`));
    for (let wave = 0; wave < 5; wave++) {
      const subs = users.map((u, i): Subscription<unknown> => {
        const client = wsClient(gateway.wsUrl, bearer(u)).client;
        return i % 2 ? subscribe(client, QuotaChangedDocument, {}) : subscribe(client, DeviceStatusChangedDocument, {});
      });
      await waitFor(() => {
        const s = gateway.app.stats().subscriptions;
        return (s.quotaChanged ?? 0) + (s.deviceStatusChanged ?? 0) === users.length;
      }, `wave ${wave} subscribed`);
      expect(Object.keys(await redisChannels(prefix))).toHaveLength(users.length);
      if (wave % 2) subs.forEach((s) => s.unsubscribe());
      await disposeClients();
      await waitFor(() => {
        const s = gateway.app.stats().subscriptions;
        return (s.quotaChanged ?? 0) + (s.deviceStatusChanged ?? 0) === 0;
      }, `wave ${wave} released`);
    }
    await waitFor(async () => Object.keys(await redisChannels(prefix)).length === 0, 'Redis channels back to none');
    expect(gateway.app.stats().sockets).toBe(0);
  }, 60_000);
});

describe('two instances', () => {
  it("share the ingest (each event bridged once, a user's in order) and each delivers to its own sockets exactly once", async () => {
    // A second instance of the same deployment: same queue, exchange, topic prefix and database.
    const second = await startGateway({ ...realServicesEnvOf(gateway) });
    const user = uniqueId('multi');
    const onFirst = subscribe(wsClient(gateway.wsUrl, bearer(user)).client, QuotaChangedDocument, {});
    const onSecond = subscribe(wsClient(second.wsUrl, bearer(user)).client, QuotaChangedDocument, {});
    const adminOnSecond = subscribe(wsClient(second.wsUrl, bearer('ops', ['admin'])).client, QuotaChangedDocument, {});
    await waitForSubscriptions(gateway, 1);
    await waitForSubscriptions(second, 2);
    const firstBefore = gateway.app.stats().bridge.bridged;
    const secondBefore = second.app.stats().bridge.bridged;
    const bridgedBefore = firstBefore + secondBefore;

    const N = 40;
    const ids = Array.from({ length: N }, (_, i) => `multi-${user}-${i}`);
    for (const id of ids) await publish('quota.updated', { userId: user }, id);

    for (const sub of [onFirst, onSecond, adminOnSecond]) {
      const got: string[] = [];
      for (let i = 0; i < N; i++)
        got.push(((await sub.next()) as { data: { quotaChanged: { eventId: string } } }).data.quotaChanged.eventId);
      // Exactly once each, and in publish order (one partition, one active consumer: docs/cluster.md).
      expect(got).toEqual(ids);
    }
    await waitFor(
      () => gateway.app.stats().bridge.bridged + second.app.stats().bridge.bridged - bridgedBefore === N,
      `${N} events bridged across both instances`,
    );
    // One user's events are in one partition, read by one instance at a time: all of them were
    // bridged by the same instance (counted from before this test's events).
    const shares = [gateway.app.stats().bridge.bridged - firstBefore, second.app.stats().bridge.bridged - secondBefore];
    expect([...shares].sort((a, b) => a - b)).toEqual([0, N]);
    // Nothing more arrives: exactly once each.
    await publish('quota.deleted', { userId: user }, `end-${user}`);
    for (const sub of [onFirst, onSecond, adminOnSecond]) {
      expect(((await sub.next()) as { data: { quotaChanged: { eventId: string } } }).data.quotaChanged.eventId).toBe(`end-${user}`);
      expect(sub.pending()).toBe(0);
    }
  }, 60_000);
});

/** The environment that started `g`, for a second instance of the same deployment. */
function realServicesEnvOf(g: TestGateway): Record<string, string> {
  const { amqp, redis: r, database: db } = g.config;
  if (amqp.kind !== 'amqp' || r.kind !== 'redis' || db.kind !== 'postgres') throw new Error('expected real services');
  return {
    DATABASE_URL: db.url,
    REDIS_URL: r.url,
    REDIS_TOPIC_PREFIX: r.topicPrefix,
    AMQP_URL: amqp.url,
    AMQP_EXCHANGE: amqp.exchange,
    AMQP_QUEUE: amqp.queue,
    AMQP_DLX: amqp.deadLetterExchange,
    AMQP_DLQ: amqp.deadLetterQueue,
    ...FAN_OUT_LIMITS,
  };
}

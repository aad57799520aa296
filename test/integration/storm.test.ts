/**
 * Event storms and slow consumers on the real services.
 *
 * - Burst: 10,000 `quota.updated` for user A through RabbitMQ in about a second while user B
 *   receives alerts. A gets the final state and far fewer than 10,000 messages (every event is
 *   either delivered or counted as coalesced); B gets every event. B's latency before and during
 *   the burst is printed (figures for the notes; not asserted: shared machine).
 * - Slow reader: a raw `ws` client that stops reading its socket. The gateway closes it with 1013,
 *   releases its subscriptions (Redis channel freed), and the heap returns near its baseline.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import Redis from 'ioredis';
import { openPlatformPeer, type PlatformPeer } from '../helpers/amqp';
import { disposeClients, subscribe, token, wsClient } from '../helpers/clients';
import { realServicesEnv, startGateway, stopGateways, waitForSubscriptions } from '../helpers/gateway';
import { connectRaw, type RawWs } from '../helpers/raw-ws';
import { createTestDatabase, TEST_REDIS_URL, uniqueId, type TestDatabase } from '../helpers/services';
import { deferred, waitFor, within } from '../helpers/wait';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

let database: TestDatabase;
let peer: PlatformPeer;
let redis: Redis;

beforeAll(async () => {
  database = await createTestDatabase();
  peer = await openPlatformPeer();
  redis = new Redis(TEST_REDIS_URL);
});

afterEach(async () => {
  await disposeClients();
  await stopGateways();
});

afterAll(async () => {
  await peer?.close();
  redis?.disconnect();
  await database?.drop();
});

const ms = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
  return { n: values.length, median: at(0.5), p90: at(0.9), max: sorted[sorted.length - 1]! };
};

describe('burst for one user', () => {
  it('coalesces 10,000 quota.updated for A to a few deliveries ending on the final state, and delivers every event of B', async () => {
    const gateway = await startGateway(realServicesEnv(database.url, { AMQP_PREFETCH: '500' }));
    const a = uniqueId('storm-a');
    const b = uniqueId('storm-b');
    const aClient = wsClient(gateway.wsUrl, { authorization: `Bearer ${token(a)}` });
    const bClient = wsClient(gateway.wsUrl, { authorization: `Bearer ${token(b)}` });
    const query = 'subscription { quotaChanged { eventId kind usage { currentDevices } } }';
    type Q = { quotaChanged: { eventId: string; kind: string; usage: { currentDevices: number | null } } };

    // B's arrivals are timed by the client as they come, not when the test gets to them.
    const bArrived = new Map<string, number>();
    const bSeen = deferred<void>();
    let bExpected = Number.POSITIVE_INFINITY;
    bClient.client.subscribe<Q>(
      { query },
      {
        next: ({ data }) => {
          bArrived.set(data!.quotaChanged.eventId, performance.now());
          if (bArrived.size >= bExpected) bSeen.resolve();
        },
        error: (error) => bSeen.reject(error),
        complete: () => undefined,
      },
    );
    const aReceived: number[] = [];
    const aFinal = deferred<void>();
    aClient.client.subscribe<Q>(
      { query },
      {
        next: ({ data }) => {
          const n = data!.quotaChanged.usage.currentDevices ?? -1;
          aReceived.push(n);
          if (n === 9_999) aFinal.resolve();
        },
        error: (error) => aFinal.reject(error),
        complete: () => undefined,
      },
    );
    await waitForSubscriptions(gateway, 2);

    // B's publisher is another platform service: its own connection, not behind A's in the client.
    const bPeer = await openPlatformPeer();
    const sentAt = new Map<string, number>();
    const sendB = async (id: string) => {
      sentAt.set(id, performance.now());
      await bPeer.publish('quota.alert', { userId: b, usagePercent: 90, severity: 'warning' }, { messageId: id });
    };

    // Before: B alone.
    for (let i = 0; i < 10; i++) {
      const id = `before-${i}-${b}`;
      await sendB(id);
      await waitFor(() => bArrived.has(id), `B's event ${id}`);
    }

    // During: 10,000 for A as fast as the broker confirms, one event for B every 500 of A's.
    const before = gateway.app.stats();
    const publishedAt = performance.now();
    const aPublishes: Promise<void>[] = [];
    const bDuring: Promise<void>[] = [];
    for (let i = 0; i < 10_000; i++) {
      aPublishes.push(peer.publish('quota.updated', { userId: a, usage: { currentDevices: i } }, { messageId: `a-${i}-${a}` }));
      if (i % 500 === 250) bDuring.push(sendB(`during-${i}-${b}`));
      if (i % 2_000 === 1_999) await Promise.all(aPublishes.splice(0)); // keep the channel's buffer small
    }
    await Promise.all([...aPublishes, ...bDuring]);
    await bPeer.close();
    const publishMs = performance.now() - publishedAt;
    bExpected = 10 + bDuring.length;
    if (bArrived.size >= bExpected) bSeen.resolve();

    // Each event is also applied to the read model (one transaction each, one user's in order):
    // draining 10,000 takes a while on a shared machine. Bounded, not timed.
    await within(aFinal.promise, "A's final state (currentDevices 9999)", 240_000);
    await within(bSeen.promise, "every one of B's events", 240_000);
    await waitFor(
      () => gateway.app.stats().bridge.bridged - before.bridge.bridged >= 10_000 + bDuring.length,
      'every event bridged',
      240_000,
    );
    const drainedMs = performance.now() - publishedAt;

    const after = gateway.app.stats();
    const coalesced = after.coalesced - before.coalesced;
    // Every one of A's 10,000 events was either delivered or replaced by a newer one.
    expect(aReceived.length + coalesced).toBe(10_000);
    expect(coalesced).toBeGreaterThan(0);
    expect(aReceived[aReceived.length - 1]).toBe(9_999);
    // A's deliveries are in publication order (coalescing keeps the latest, never an older one).
    expect(aReceived).toEqual([...aReceived].sort((x, y) => x - y));
    expect(after.overflowed).toBe(before.overflowed);
    // B got everything, unchanged.
    for (const id of sentAt.keys()) expect(bArrived.has(id)).toBe(true);

    const latency = (prefix: string) => ms([...sentAt].filter(([id]) => id.startsWith(prefix)).map(([id, at]) => bArrived.get(id)! - at));
    const figures = {
      publishMs: Math.round(publishMs),
      drainedMs: Math.round(drainedMs),
      aDelivered: aReceived.length,
      coalesced,
      bLatencyBeforeMs: latency('before-'),
      bLatencyDuringMs: latency('during-'),
    };
    console.log(`burst figures: ${JSON.stringify(figures)}`);
  }, 300_000);
});

describe('slow reader', () => {
  /** A graphql-ws client on a bare TCP socket, so the test can stop reading it. */
  async function rawClient(url: string, jwt: string, subscriptions: number): Promise<RawWs> {
    const raw = await connectRaw(url);
    raw.json({ type: 'connection_init', payload: { authorization: `Bearer ${jwt}` } });
    expect(await raw.message('connection_ack')).toEqual({ type: 'connection_ack' });
    for (let i = 0; i < subscriptions; i++) {
      raw.json({
        id: `s${i}`,
        type: 'subscribe',
        payload: { query: 'subscription { quotaChanged { eventId type userId occurredAt kind severity usagePercent } }' },
      });
    }
    return raw;
  }

  const heapMb = () => {
    gc();
    gc();
    return process.memoryUsage().heapUsed / 1_048_576;
  };

  it.each([
    // One subscription: its sends stall once the kernel buffers are full, then its buffer fills.
    ['its event buffer overflows', { EVENT_BUFFER_MAX: '200' }, 1, 100, 'overflowed'],
    // Many subscriptions on one socket: each stalls with a message in flight; together they pass the byte bound.
    ['its unsent bytes exceed WS_MAX_BUFFERED_BYTES', { EVENT_BUFFER_MAX: '100000', WS_MAX_BUFFERED_BYTES: '16384' }, 20, 10, 'bytes'],
  ] as const)(
    'closes a client that stops reading with 1013 when %s; subscriptions released, heap back near baseline',
    async (_name, limits, subscriptions, batchSize, path) => {
      const gateway = await startGateway(
        realServicesEnv(database.url, {
          ...limits,
          WS_KEEPALIVE_MS: '0',
          WS_SLOW_CLOSE_GRACE_MS: '60000',
          WS_MAX_SUBSCRIPTIONS_PER_SOCKET: '25',
        }),
      );
      const user = uniqueId('slow');
      const topic = `${gateway.config.redis.topicPrefix}quota:user:${user}`;
      const numsub = async () => Number(((await redis.call('PUBSUB', 'NUMSUB', topic)) as [string, number])[1]);

      // A healthy neighbour on the same instance keeps receiving.
      const neighbour = uniqueId('neighbour');
      const healthy = wsClient(gateway.wsUrl, { authorization: `Bearer ${token(neighbour)}` });
      const healthySub = subscribe(healthy.client, 'subscription { quotaChanged { eventId } }');
      await waitForSubscriptions(gateway, 1);

      const baseline = heapMb();
      const client = await rawClient(gateway.wsUrl, token(user), subscriptions);
      await waitForSubscriptions(gateway, 1 + subscriptions);
      client.pause();

      // ~2 KB events straight onto the user's channel, until the gateway gives up on the reader.
      // Paced: after each batch (smaller than the buffer bound) a marker must reach the healthy
      // neighbour, so a client that reads would never fall behind; only the paused one does.
      const severity = 'x'.repeat(2_000);
      const neighbourTopic = `${gateway.config.redis.topicPrefix}quota:user:${neighbour}`;
      let published = 0;
      let peak = 0;
      for (let batch = 0; batch < 2_000 && gateway.app.stats().ws.slowConsumerCloses === 0; batch++) {
        const pipeline = redis.pipeline();
        for (let i = 0; i < batchSize; i++, published++) {
          const event = {
            family: 'quota',
            eventId: `slow-${published}`,
            type: 'quota.alert',
            userId: user,
            occurredAt: new Date().toISOString(),
            kind: 'ALERT',
            severity,
            usagePercent: 99,
          };
          pipeline.publish(topic, JSON.stringify(event));
        }
        const marker = `m-${batch}-${neighbour}`;
        pipeline.publish(
          neighbourTopic,
          JSON.stringify({
            family: 'quota',
            eventId: marker,
            type: 'quota.alert',
            userId: neighbour,
            occurredAt: new Date().toISOString(),
            kind: 'ALERT',
          }),
        );
        await pipeline.exec();
        expect((await healthySub.next()).data).toEqual({ quotaChanged: { eventId: marker } });
        peak = Math.max(peak, process.memoryUsage().heapUsed / 1_048_576);
      }
      await waitFor(() => gateway.app.stats().ws.slowConsumerCloses === 1, 'the slow consumer to be closed', 30_000);
      const stats = gateway.app.stats();
      // One subscription's buffer overflows, once (the stream ends with it); the neighbour's never.
      if (path === 'overflowed') expect(stats.overflowed).toBe(1);
      else expect(stats.overflowed).toBe(0);

      // Released at once, although the peer has not completed the close handshake.
      await waitForSubscriptions(gateway, 1);
      await waitFor(async () => (await numsub()) === 0, "Redis to drop the slow reader's channel");
      const after = heapMb();
      console.log(
        `slow reader (${path}): ${JSON.stringify({ published, heapBaselineMb: +baseline.toFixed(1), heapPeakMb: +peak.toFixed(1), heapAfterMb: +after.toFixed(1) })}`,
      );
      expect(after - baseline).toBeLessThan(16);

      // The neighbour was never affected.
      await redis.publish(
        neighbourTopic,
        JSON.stringify({
          family: 'quota',
          eventId: `n-${neighbour}`,
          type: 'quota.alert',
          userId: neighbour,
          occurredAt: new Date().toISOString(),
          kind: 'ALERT',
        }),
      );
      expect((await healthySub.next()).data).toEqual({ quotaChanged: { eventId: `n-${neighbour}` } });

      // A second look from the client: once it reads again, what is queued ends with the 1013 close.
      client.resume();
      await expect(within(client.closed, 'the close frame', 30_000)).resolves.toBe(1013);
      await waitFor(() => gateway.app.stats().sockets === 1, 'the socket to be gone');
    },
    120_000,
  );
});

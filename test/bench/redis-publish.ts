/**
 * The gateway's Redis publish path alone (docs/decisions/0601-redis-publish-batches.md): client
 * CPU and Redis CPU per event for `RedisEventPubSub.publish` one by one (1 and 10 in flight)
 * against `publishMany` by 10, 50, 100 and 500, with the retained log on (the defaults: 500 per
 * user, 10,000 every-user, an hour). Events of 1,000 users, plus one notification and one system
 * event in every 20 (their audience logs). No subscription is held: each subscribed instance
 * adds its share of the PUBLISH fan-out to Redis' figure.
 *
 *   npx tsc -p test --noEmit false --outDir .tmp/rp && node .tmp/rp/test/bench/redis-publish.js [N=10000] [ROUNDS=3]
 *
 * Redis is a private `redis-server` on a free loopback port (the shared one's CPU counts every
 * other client too); `BENCH_REDIS_URL=redis://...` uses that server instead. Either way the keys
 * are under a private prefix, deleted at the end. Redis CPU is the `INFO cpu` delta
 * (used_cpu_user + used_cpu_sys), client CPU `process.cpuUsage()`, Redis time per script call the
 * `INFO commandstats` delta of EVAL/EVALSHA (how long one call holds Redis). The scenarios run in
 * ROUNDS interleaved rounds; one JSON line per scenario with the median of its rounds.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import Redis from 'ioredis';
import pino from 'pino';
import type { GatewayEvent } from '../../src/contracts/events';
import type { PublishItem } from '../../src/contracts/ports';
import { createTopics } from '../../src/contracts/topics';
import { RedisEventPubSub } from '../../src/infra/redis/redis-pubsub';
import { freePort } from '../helpers/ports';

const N = Number(process.argv[2] ?? 10_000);
const ROUNDS = Number(process.argv[3] ?? 3);
const USERS = 1_000;
const prefix = `bench-publish-${process.pid}:`;
const topics = createTopics(prefix);

function item(i: number, round: number): PublishItem {
  const eventId = `r${round}-e${i}`;
  const occurredAt = new Date().toISOString();
  if (i % 20 === 7) {
    const event = {
      family: 'notification',
      eventId,
      type: 'notification.created',
      occurredAt,
      audience: { scope: 'USER', id: `user-${i % USERS}` },
      title: 'Maintenance tonight',
      body: 'Devices in region eu-1 restart between 02:00 and 03:00.',
    } as unknown as GatewayEvent;
    return { topic: topics.audience('USER', `user-${i % USERS}`), event, options: { log: topics.notificationLog() } };
  }
  if (i % 20 === 13) {
    const event = {
      family: 'system',
      eventId,
      type: 'system.alert',
      occurredAt,
      level: 'WARN',
      message: 'queue depth',
    } as unknown as GatewayEvent;
    return { topic: topics.system(), event, options: { log: topics.systemLog() } };
  }
  const userId = `user-${i % USERS}`;
  const event =
    i % 2 === 0
      ? ({
          family: 'quota',
          eventId,
          type: 'quota.updated',
          userId,
          occurredAt,
          kind: 'UPDATED',
          quotaId: `q-${userId}`,
          usage: { currentDevices: i % 7, usedCpuCores: 2 },
          limits: { maxDevices: 5 },
        } as unknown as GatewayEvent)
      : ({
          family: 'device',
          eventId,
          type: 'device.status.changed',
          userId,
          occurredAt,
          deviceId: `dev-${i % 5_000}`,
          status: i % 3 ? 'RUNNING' : 'STOPPED',
        } as unknown as GatewayEvent);
  return { topic: topics.user(event.family, userId), event };
}

interface Scenario {
  readonly name: string;
  /** Publishes `items`, all of them, in order (per in-flight lane). */
  run(pubsub: RedisEventPubSub, items: readonly PublishItem[]): Promise<void>;
  readonly autoPipelining?: boolean;
}

const oneByOne = (inFlight: number, autoPipelining = false): Scenario => ({
  name: `publish, ${inFlight} in flight${autoPipelining ? ', auto-pipelining' : ''}`,
  autoPipelining,
  async run(pubsub, items) {
    let next = 0;
    await Promise.all(
      Array.from({ length: inFlight }, async () => {
        while (next < items.length) {
          const { topic, event, options } = items[next++] as PublishItem;
          await pubsub.publish(topic, event, options);
        }
      }),
    );
  },
});

const batches = (size: number, autoPipelining = false): Scenario => ({
  name: `publishMany by ${size}${autoPipelining ? ', auto-pipelining' : ''}`,
  autoPipelining,
  async run(pubsub, items) {
    for (let start = 0; start < items.length; start += size) await pubsub.publishMany(items.slice(start, start + size));
  },
});

const SCENARIOS: Scenario[] = [
  oneByOne(1),
  oneByOne(10),
  oneByOne(10, true),
  batches(10),
  batches(10, true),
  batches(50),
  batches(100),
  batches(500),
];

/** Redis' own CPU, in microseconds, and its script calls: count and microseconds inside them. */
async function redisCounters(redis: Redis): Promise<{ cpuUs: number; scriptCalls: number; scriptUs: number }> {
  const [cpu, stats] = await Promise.all([redis.info('cpu'), redis.info('commandstats')]);
  const field = (name: string) => Number(new RegExp(`^${name}:([0-9.]+)`, 'm').exec(cpu)?.[1] ?? 0);
  let scriptCalls = 0;
  let scriptUs = 0;
  for (const match of stats.matchAll(/^cmdstat_(?:evalsha|eval):calls=(\d+),usec=(\d+)/gm)) {
    scriptCalls += Number(match[1]);
    scriptUs += Number(match[2]);
  }
  return { cpuUs: (field('used_cpu_user') + field('used_cpu_sys')) * 1e6, scriptCalls, scriptUs };
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] as number;

async function startServer(): Promise<{ url: string; child?: ChildProcess }> {
  if (process.env.BENCH_REDIS_URL) return { url: process.env.BENCH_REDIS_URL };
  const port = await freePort();
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
    stdio: 'ignore',
  });
  return { url: `redis://127.0.0.1:${port}`, child };
}

async function main(): Promise<void> {
  const server = await startServer();
  const raw = new Redis(server.url, { lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => null });
  raw.on('error', () => undefined);
  const pubsub = new RedisEventPubSub(server.url, prefix, pino({ level: 'silent' }), undefined, {
    maxEvents: 500,
    maxAllEvents: 10_000,
    maxAgeMs: 3_600_000,
  });
  const publisher = (pubsub as unknown as { publisher: Redis }).publisher;
  try {
    for (let attempt = 0; ; attempt++) {
      try {
        await pubsub.ready();
        if (raw.status === 'wait') await raw.connect();
        break;
      } catch (error) {
        if (attempt >= 50) throw error;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
    // Warm-up: scripts loaded, logs at their steady length for the first users, JIT warm.
    await batches(50).run(
      pubsub,
      Array.from({ length: 2_000 }, (_, i) => item(i, 0)),
    );
    await oneByOne(10).run(
      pubsub,
      Array.from({ length: 2_000 }, (_, i) => item(i, 0)),
    );
    const results = new Map<string, { clientUs: number[]; redisUs: number[]; callUs: number[]; perSecond: number[] }>();
    for (let round = 1; round <= ROUNDS; round++) {
      for (const [s, scenario] of SCENARIOS.entries()) {
        const items = Array.from({ length: N }, (_, i) => item(i, round * 100 + s));
        // The bench's own switch (ioredis reads the option on every command): the adapter's
        // one-Redis publisher runs without auto-pipelining (docs/decisions/0601).
        (publisher.options as { enableAutoPipelining?: boolean }).enableAutoPipelining = scenario.autoPipelining === true;
        const before = await redisCounters(raw);
        const cpu = process.cpuUsage();
        const started = process.hrtime.bigint();
        await scenario.run(pubsub, items);
        const wallMs = Number(process.hrtime.bigint() - started) / 1e6;
        const used = process.cpuUsage(cpu);
        const after = await redisCounters(raw);
        const entry = results.get(scenario.name) ?? { clientUs: [], redisUs: [], callUs: [], perSecond: [] };
        results.set(scenario.name, entry);
        entry.clientUs.push((used.user + used.system) / N);
        entry.redisUs.push((after.cpuUs - before.cpuUs) / N);
        entry.callUs.push((after.scriptUs - before.scriptUs) / Math.max(1, after.scriptCalls - before.scriptCalls));
        entry.perSecond.push((N / wallMs) * 1_000);
      }
    }
    (publisher.options as { enableAutoPipelining?: boolean }).enableAutoPipelining = false;
    for (const [name, entry] of results) {
      console.log(
        JSON.stringify({
          stage: 'redis-publish',
          scenario: name,
          events: N,
          rounds: ROUNDS,
          clientCpuUsPerEvent: +median(entry.clientUs).toFixed(1),
          redisCpuUsPerEvent: +median(entry.redisUs).toFixed(1),
          redisUsPerScriptCall: Math.round(median(entry.callUs)),
          eventsPerSecond: Math.round(median(entry.perSecond)),
        }),
      );
    }
  } finally {
    await pubsub.close();
    // Private prefix: only this run's keys go (the log keys; channels hold nothing).
    if (raw.status === 'ready') {
      let cursor = '0';
      for (let pass = 0; pass < 10_000; pass++) {
        const [next, keys] = await raw.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1_000);
        if (keys.length > 0) await raw.del(...keys);
        cursor = next;
        if (cursor === '0') break;
      }
    }
    raw.disconnect();
    server.child?.kill('SIGTERM');
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);

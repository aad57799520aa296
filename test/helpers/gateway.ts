/**
 * Starts real gateway instances on free ports and always stops them (graphql-ws tservers style):
 * each is registered for teardown (./teardown.ts) before it starts, with the queues, exchanges
 * and retained logs the file's gateways declared; `stopGateways()` does the same earlier.
 */
import amqp from 'amqplib';
import Redis from 'ioredis';
import { buildApp, type App } from '../../src/app';
import { loadConfig, type Config } from '../../src/config';
import { partitionTopology } from '../../src/infra/amqp/partition-topology';
import { createLogger } from '../../src/logger';
import { TEST_AMQP_URL, TEST_EXCHANGE, TEST_JWT_SECRET, TEST_REDIS_URL, uniqueId } from './services';
import { track, type Tracked } from './teardown';
import { waitFor } from './wait';

export interface TestGateway {
  readonly app: App;
  readonly config: Config;
  readonly httpUrl: string;
  readonly wsUrl: string;
}

const running = new Map<App, Tracked>();
/** The file's one teardown entry for its queues, exchanges and logs (registered with the first gateway). */
let resources: Tracked | undefined;
const topologies: Config['amqp'][] = [];
/** Redis prefixes whose retained event logs (`<prefix>log:*`) are deleted in `stopGateways`. */
const logPrefixes = new Set<string>();

type Env = Record<string, string | undefined>;

/** Environment for a gateway on the real services, with names unique to this run. */
export function realServicesEnv(databaseUrl: string, overrides: Env = {}): Env {
  const id = uniqueId('cpr-test');
  return {
    DATABASE_URL: databaseUrl,
    REDIS_URL: TEST_REDIS_URL,
    AMQP_URL: TEST_AMQP_URL,
    AMQP_EXCHANGE: TEST_EXCHANGE,
    AMQP_QUEUE: `${id}.events`,
    AMQP_DLQ: `${id}.dlq`,
    AMQP_DLX: `${id}.dlx`,
    REDIS_TOPIC_PREFIX: `${id}:`,
    ...overrides,
  };
}

export async function startGateway(env: Env): Promise<TestGateway> {
  const config = loadConfig({
    PORT: '0',
    HOST: '127.0.0.1',
    JWT_SECRET: TEST_JWT_SECRET,
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    OUTBOX_POLL_MS: '200',
    // Requeued messages (an owner not known yet, an outage) come back quickly in tests.
    AMQP_REQUEUE_DELAY_MS: '100',
    SHUTDOWN_TIMEOUT_MS: '2000',
    ...env,
  });
  // Registered first, so it is deleted after the gateways that use it have stopped (newest first).
  resources ??= track("AMQP queues and exchanges, Redis logs of this file's gateways", deleteRunResources);
  if (config.amqp.kind === 'amqp') topologies.push(config.amqp);
  if (config.redis.kind === 'redis') logPrefixes.add(config.redis.topicPrefix);
  const app = buildApp(config, createLogger(config.logLevel));
  // Before start(): a start that fails half way (the broker refuses) still gets its stop().
  running.set(
    app,
    track(`gateway (${config.amqp.kind === 'amqp' ? config.amqp.queue : 'embedded'})`, () => app.stop()),
  );
  await app.start();
  return { app, config, httpUrl: `${app.url}/graphql`, wsUrl: `ws://127.0.0.1:${app.port}/graphql` };
}

export async function stopGateway(gateway: TestGateway): Promise<void> {
  const tracked = running.get(gateway.app);
  running.delete(gateway.app);
  await (tracked ? tracked.close() : gateway.app.stop());
}

/** Stops every gateway still running and deletes the queues and exchanges this run declared. */
export async function stopGateways(): Promise<void> {
  const apps = [...running.values()];
  running.clear();
  await Promise.all(apps.map((tracked) => tracked.close()));
  await resources?.close();
}

async function deleteRunResources(): Promise<void> {
  resources = undefined;
  await deleteEventLogs([...logPrefixes]);
  logPrefixes.clear();
  const names = topologies.splice(0);
  if (names.length === 0) return;
  const connection = await amqp.connect(TEST_AMQP_URL);
  try {
    const channel = await connection.createChannel();
    for (const n of names) {
      await channel.deleteQueue(n.queue);
      await channel.deleteQueue(n.deadLetterQueue);
      await channel.deleteExchange(n.deadLetterExchange);
      if (n.partitions > 0) {
        const topology = partitionTopology(n.queue, n.partitions);
        for (const queue of [topology.router, ...topology.partitions]) await channel.deleteQueue(queue);
        await channel.deleteExchange(topology.exchange);
      }
    }
    // Test exchanges are this run's own; the shared production name is never deleted.
    for (const exchange of new Set(names.map((n) => n.exchange))) {
      if (exchange.startsWith('cpr-test')) await channel.deleteExchange(exchange);
    }
    await channel.close();
  } finally {
    await connection.close();
  }
}

/** Waits until `gateway` counts exactly `n` live subscriptions of `field` (pub/sub confirmed). */
export function waitForSubscriptions(gateway: TestGateway, n: number, field = 'quotaChanged'): Promise<void> {
  return waitFor(() => (gateway.app.stats().subscriptions[field] ?? 0) === n, `${n} ${field} subscriptions`);
}

/** Deletes the retained event logs of this run's prefixes (they would otherwise expire within the hour). */
async function deleteEventLogs(prefixes: string[]): Promise<void> {
  if (prefixes.length === 0) return;
  const redis = new Redis(TEST_REDIS_URL);
  try {
    for (const prefix of prefixes) {
      let cursor = '0';
      for (let page = 0; page < 1_000; page++) {
        const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}log:*`, 'COUNT', 1_000);
        if (keys.length > 0) await redis.del(...keys);
        cursor = next;
        if (cursor === '0') break;
      }
    }
  } finally {
    redis.disconnect();
  }
}

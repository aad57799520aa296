/**
 * One chaos scenario, measured from the outside: gateway instances as child processes, a
 * confirmed publisher playing the platform (each user's events numbered 1, 2, 3, ...), and one
 * resuming client per user (the README's `withResume`, reconnecting to whichever instance is
 * alive) that records what it receives. A fault is played while the publisher runs; the figures
 * are per user:
 *
 * - lost: published and confirmed, never received;
 * - duplicated: received again after it was already received (allowed: at-least-once);
 * - out of order: received for the first time after a later event of the same user;
 * - time to recover: from the fault until every user received an event published after it.
 */
import { createClient, type Client } from 'graphql-ws';
import amqp, { type ChannelModel, type ConfirmChannel } from 'amqplib';
import Redis from 'ioredis';
import WebSocket from 'ws';
import { partitionTopology } from '../../src/infra/amqp/partition-topology';
import { token } from '../helpers/clients';
import { startGatewayProcess, type GatewayProcess } from '../helpers/gateway-process';
import { withResume } from '../helpers/resumable-client';
import { uniqueId } from '../helpers/services';

export interface ChaosServices {
  readonly amqpUrl: string;
  readonly redisUrl: string;
  /** A fresh, empty database for this scenario. */
  database(): Promise<string>;
}

export interface ScenarioContext {
  readonly instances: GatewayProcess[];
  /** Starts one more instance with the scenario's environment. */
  startInstance(): Promise<GatewayProcess>;
}

export interface ScenarioSpec {
  readonly name: string;
  readonly instances: number;
  readonly users: number;
  readonly events: number;
  /** Gap between two published events, in milliseconds. */
  readonly intervalMs: number;
  /** Played (without holding the publisher) once this many events were published. */
  readonly fault?: { readonly atEvent: number; readonly play: (context: ScenarioContext) => Promise<void> };
  /** Extra gateway environment. */
  readonly env?: Record<string, string>;
  /** Longest wait for the last events after publishing ends. @default 60_000 */
  readonly settleMs?: number;
}

export interface ScenarioResult {
  readonly name: string;
  readonly expected: number;
  readonly received: number;
  readonly lost: number;
  readonly duplicated: number;
  readonly outOfOrder: number;
  /** Milliseconds from the fault to every user receiving an event published after it; undefined without a fault. */
  readonly recoverMs?: number;
  /** Subscription errors by code (HISTORY_EXPIRED after a lost log, ...). */
  readonly errors: Readonly<Record<string, number>>;
  readonly publishedPerSec: number;
  /** Milliseconds from the last publish confirmed to the last event received (Infinity: never all). */
  readonly catchUpMs: number;
}

interface UserTrack {
  readonly id: string;
  published: number;
  /** When each event was published (index: seq). */
  readonly publishedAt: number[];
  readonly seen: Set<number>;
  max: number;
  duplicated: number;
  outOfOrder: number;
  firstAfterFault?: number;
  lastReceivedAt: number;
}

/** A pause that never keeps the process alive by itself (it paces and bounds; it never waits for a condition alone). */
const pause = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms).unref());

const SUBSCRIPTION = 'subscription Q($after: ID) { quotaChanged(after: $after) { eventId } }';

export async function runScenario(
  services: ChaosServices,
  spec: ScenarioSpec,
  log: (line: string) => void = () => undefined,
): Promise<ScenarioResult> {
  const run = uniqueId('chaos');
  const exchange = `${run}.x`;
  const env: Record<string, string> = {
    DATABASE_URL: await services.database(),
    REDIS_URL: services.redisUrl,
    AMQP_URL: services.amqpUrl,
    AMQP_EXCHANGE: exchange,
    AMQP_QUEUE: `${run}.events`,
    AMQP_DLQ: `${run}.dlq`,
    AMQP_DLX: `${run}.dlx`,
    REDIS_TOPIC_PREFIX: `${run}:`,
    // Every event reaches the client: order is judged on all of them.
    EVENT_COALESCE_MS: '0',
    EVENT_LOG_MAX_EVENTS: '5000',
    LOG_LEVEL: 'info',
    ...spec.env,
  };
  const instances: GatewayProcess[] = [];
  const dead = new Set<GatewayProcess>();
  const clients: Client[] = [];
  let publisher: Publisher | undefined;
  const context: ScenarioContext = {
    instances,
    async startInstance() {
      const instance = await startGatewayProcess(env);
      void instance.exited.then(() => dead.add(instance));
      instances.push(instance);
      return instance;
    },
  };
  try {
    // The first one alone: it migrates the database.
    await context.startInstance();
    await Promise.all(Array.from({ length: spec.instances - 1 }, () => context.startInstance()));
    log(`${spec.name}: ${instances.length} instances up (pids ${instances.map((g) => g.pid).join(', ')})`);
    publisher = await Publisher.open(services.amqpUrl, exchange);

    const users: UserTrack[] = Array.from({ length: spec.users }, (_, i) => ({
      id: `${run}-u${i}`,
      published: 0,
      publishedAt: [],
      seen: new Set<number>(),
      max: 0,
      duplicated: 0,
      outOfOrder: 0,
      lastReceivedAt: 0,
    }));
    const errors: Record<string, number> = {};
    let faultAt: number | undefined;
    let faultEnd: number | undefined;
    const warm = new Map<string, () => void>();
    const warmed = users.map((user) => new Promise<void>((resolve) => warm.set(user.id, resolve)));

    users.forEach((user, index) => {
      let attempt = 0;
      const alive = () => instances.filter((g) => !dead.has(g));
      const client = withResume(
        createClient({
          url: () => {
            const live = alive();
            const target = live[(index + attempt++) % live.length] ?? instances[0]!;
            return target.wsUrl;
          },
          webSocketImpl: WebSocket,
          connectionParams: { authorization: `Bearer ${token(user.id, { expiresInSec: 3_600 })}` },
          lazy: false,
          retryAttempts: 1_000,
          retryWait: async () => new Promise((resolve) => setTimeout(resolve, 100 + Math.random() * 200)),
          shouldRetry: () => true,
          onNonLazyError: () => undefined,
        }),
      );
      clients.push(client);
      const subscribeOnce = (): void => {
        client.subscribe<{ quotaChanged: { eventId: string } }>(
          { query: SUBSCRIPTION, variables: {} },
          {
            next(result) {
              const code = result.errors?.[0]?.extensions?.code;
              if (code) {
                const key = typeof code === 'string' ? code : JSON.stringify(code);
                errors[key] = (errors[key] ?? 0) + 1;
                return;
              }
              const eventId = result.data?.quotaChanged.eventId;
              if (!eventId) return;
              if (eventId.endsWith(':warm')) return warm.get(user.id)?.();
              const seq = Number(eventId.slice(eventId.lastIndexOf(':') + 1));
              const now = Date.now();
              user.lastReceivedAt = now;
              if (user.seen.has(seq)) {
                user.duplicated++;
                return;
              }
              if (seq < user.max) user.outOfOrder++;
              user.seen.add(seq);
              user.max = Math.max(user.max, seq);
              if (faultEnd !== undefined && user.firstAfterFault === undefined && (user.publishedAt[seq] ?? 0) >= faultEnd) {
                user.firstAfterFault = now;
              }
            },
            error(error) {
              const code =
                (Array.isArray(error) ? (error[0] as { extensions?: { code?: string } })?.extensions?.code : undefined) ??
                'SUBSCRIPTION_ERROR';
              errors[code] = (errors[code] ?? 0) + 1;
              // Continuity could not be proven: start again from now (what a frontend does after a refetch).
              setTimeout(subscribeOnce, 100);
            },
            complete: () => undefined,
          },
        );
      };
      subscribeOnce();
    });

    // Every client is subscribed once its warm-up event arrives (retried: a subscription may not be live yet).
    const warmDeadline = Date.now() + 60_000;
    const pendingWarm = new Set(users.map((u) => u.id));
    warmed.forEach((p, i) => void p.then(() => pendingWarm.delete(users[i]!.id)));
    for (let round = 0; pendingWarm.size > 0 && Date.now() < warmDeadline && round < 600; round++) {
      for (const id of pendingWarm) await publisher.publish('quota.updated', { userId: id }, `${id}:warm`);
      await Promise.race([Promise.all(warmed), pause(500)]);
    }
    if (pendingWarm.size > 0) throw new Error(`${pendingWarm.size} clients never subscribed`);
    log(`${spec.name}: ${users.length} clients subscribed`);

    // Publish at the given pace, one confirmed event at a time (a retried publish keeps its id).
    const began = Date.now();
    let fault: Promise<void> | undefined;
    for (let i = 0; i < spec.events; i++) {
      if (spec.fault && i === spec.fault.atEvent) {
        faultAt = Date.now();
        log(`${spec.name}: fault at event ${i}`);
        fault = spec.fault.play(context).then(() => {
          faultEnd = Date.now();
          log(`${spec.name}: fault over after ${faultEnd - (faultAt as number)} ms`);
        });
      }
      const user = users[i % users.length] as UserTrack;
      const seq = ++user.published;
      user.publishedAt[seq] = Date.now();
      await publisher.room();
      void publisher.publish(
        'quota.updated',
        { userId: user.id, quotaId: `${user.id}-q`, usage: { currentDevices: seq % 1000 }, timestamp: Date.now() },
        `${user.id}:${seq}`,
      );
      const due = began + (i + 1) * spec.intervalMs;
      const wait = due - Date.now();
      if (wait > 0) await pause(wait);
    }
    const publishedPerSec = spec.events / ((Date.now() - began) / 1_000);
    await fault;
    await publisher.drain();
    // After the fault ends, keep a trickle going so every user gets an event published after it.
    if (faultEnd !== undefined) {
      for (const user of users) {
        const seq = ++user.published;
        user.publishedAt[seq] = Date.now();
        await publisher.room();
        void publisher.publish('quota.updated', { userId: user.id, timestamp: Date.now() }, `${user.id}:${seq}`);
      }
      await publisher.drain();
    }
    const publishedAt = Date.now();
    const settleDeadline = Date.now() + (spec.settleMs ?? 60_000);
    const complete = () => users.every((u) => u.seen.size === u.published);
    for (let i = 0; !complete() && Date.now() < settleDeadline && i < 10_000; i++) {
      await pause(20);
    }
    const catchUpMs = complete() ? Math.max(0, Math.max(...users.map((u) => u.lastReceivedAt)) - publishedAt) : Infinity;
    // Late duplicates (redeliveries) still arriving are counted: a short quiet period.
    const quietSince = () => Math.max(...users.map((u) => u.lastReceivedAt));
    for (let i = 0; Date.now() - quietSince() < 1_000 && i < 50; i++) await pause(100);

    const expected = users.reduce((n, u) => n + u.published, 0);
    const received = users.reduce((n, u) => n + u.seen.size, 0);
    const recovered = users.map((u) => u.firstAfterFault);
    return {
      name: spec.name,
      expected,
      received,
      lost: expected - received,
      duplicated: users.reduce((n, u) => n + u.duplicated, 0),
      outOfOrder: users.reduce((n, u) => n + u.outOfOrder, 0),
      recoverMs:
        faultAt === undefined
          ? undefined
          : recovered.every((t) => t !== undefined)
            ? Math.max(...recovered) - faultAt
            : Number.POSITIVE_INFINITY,
      errors,
      publishedPerSec,
      catchUpMs,
    };
  } finally {
    await Promise.all(clients.map(async (c) => c.dispose()));
    await publisher?.close();
    for (const instance of instances) {
      if (dead.has(instance)) continue;
      instance.kill('SIGTERM');
      await Promise.race([instance.exited, pause(10_000)]);
      if (!dead.has(instance)) instance.kill('SIGKILL');
    }
    await Promise.all(instances.map((i) => i.exited));
    await removeTopology(services, env).catch((error: unknown) => log(`cleanup failed: ${String(error)}`));
  }
}

/** Deletes what the scenario declared on the broker and wrote to Redis (shared services stay clean). */
async function removeTopology(services: ChaosServices, env: Record<string, string>): Promise<void> {
  const connection = await amqp.connect(services.amqpUrl);
  try {
    const channel = await connection.createChannel();
    const topology = partitionTopology(env.AMQP_QUEUE as string, Number(env.AMQP_PARTITIONS ?? 16));
    for (const queue of [topology.router, ...topology.partitions, topology.legacy, env.AMQP_DLQ as string])
      await channel.deleteQueue(queue);
    for (const exchange of [topology.exchange, env.AMQP_DLX as string, env.AMQP_EXCHANGE as string]) await channel.deleteExchange(exchange);
    await channel.close();
  } finally {
    await connection.close().catch(() => undefined);
  }
  const redis = new Redis(services.redisUrl);
  try {
    let cursor = '0';
    for (let page = 0; page < 1_000; page++) {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${env.REDIS_TOPIC_PREFIX}*`, 'COUNT', 1_000);
      if (keys.length > 0) await redis.del(...keys);
      cursor = next;
      if (cursor === '0') break;
    }
  } finally {
    redis.disconnect();
  }
}

/**
 * The platform's side: confirmed publishes on one channel, pipelined so that the pace does not
 * depend on the confirm round trip. What is not confirmed when the connection goes is published
 * again, in the original order, on the next one (with the same message id): the broker handles a
 * channel's messages in order, so a re-send can only repeat an event, never put it before an
 * earlier one.
 */
class Publisher {
  private connection: ChannelModel | undefined;
  private channel: ConfirmChannel | undefined;
  private generation = 0;
  private readonly pending = new Map<string, { routingKey: string; content: Buffer; confirmed: () => void }>();
  private reconnecting: Promise<void> | undefined;
  private closed = false;

  private constructor(
    private readonly url: string,
    private readonly exchange: string,
  ) {}

  static async open(url: string, exchange: string): Promise<Publisher> {
    const publisher = new Publisher(url, exchange);
    await publisher.connect();
    return publisher;
  }

  private async connect(): Promise<void> {
    const connection = await amqp.connect(this.url);
    connection.on('error', () => undefined);
    const channel = await connection.createConfirmChannel();
    channel.on('error', () => undefined);
    await channel.assertExchange(this.exchange, 'topic', { durable: true });
    const generation = ++this.generation;
    this.connection = connection;
    this.channel = channel;
    const lost = () => {
      if (this.generation !== generation || this.closed) return;
      this.channel = undefined;
      this.scheduleReconnect();
    };
    connection.on('close', lost);
    channel.on('close', lost);
    for (const [messageId, entry] of this.pending) this.send(messageId, entry);
  }

  private scheduleReconnect(): void {
    if (this.reconnecting) return;
    this.reconnecting = (async () => {
      for (let attempt = 0; attempt < 1_200 && !this.closed; attempt++) {
        await pause(100);
        try {
          await this.connection?.close().catch(() => undefined);
          await this.connect();
          return;
        } catch {
          // broker still away
        }
      }
    })().finally(() => (this.reconnecting = undefined));
  }

  private send(messageId: string, entry: { routingKey: string; content: Buffer; confirmed: () => void }): void {
    const channel = this.channel;
    if (!channel) return;
    const generation = this.generation;
    try {
      channel.publish(
        this.exchange,
        entry.routingKey,
        entry.content,
        { persistent: true, contentType: 'application/json', messageId },
        (error) => {
          if (error || generation !== this.generation || this.pending.get(messageId) !== entry) return;
          this.pending.delete(messageId);
          entry.confirmed();
        },
      );
    } catch {
      // the channel closed under us: `lost` re-sends
    }
  }

  /**
   * Resolves once fewer than 1,000 publishes wait for their confirm (bounded: a minute). Awaited
   * by the caller before `publish`, so events enter `pending` in the caller's order: waiting
   * inside `publish` would let a later event overtake an earlier one at the source.
   */
  async room(): Promise<void> {
    for (let i = 0; this.pending.size >= 1_000 && i < 6_000; i++) await pause(10);
  }

  /** Sends at once (in call order); resolves when confirmed. */
  publish(routingKey: string, body: unknown, messageId: string): Promise<void> {
    const confirmed = new Promise<void>((resolve) => {
      const entry = { routingKey, content: Buffer.from(JSON.stringify(body)), confirmed: resolve };
      this.pending.set(messageId, entry);
      this.send(messageId, entry);
    });
    return confirmed;
  }

  /** Resolves once everything published so far is confirmed (bounded: two minutes). */
  async drain(): Promise<void> {
    for (let i = 0; this.pending.size > 0 && i < 1_200; i++) await pause(100);
    if (this.pending.size > 0) throw new Error(`${this.pending.size} publishes never confirmed`);
  }

  async close(): Promise<void> {
    this.closed = true;
    const connection = this.connection;
    this.connection = undefined;
    await connection?.close().catch(() => undefined);
  }
}

/** The per-scenario table the chaos run prints. */
export function formatResults(results: readonly ScenarioResult[]): string {
  const header = ['scenario', 'expected', 'received', 'lost', 'duplicated', 'out of order', 'time to recover', 'errors'];
  const rows = results.map((r) => [
    r.name,
    String(r.expected),
    String(r.received),
    String(r.lost),
    String(r.duplicated),
    String(r.outOfOrder),
    r.recoverMs === undefined ? '-' : Number.isFinite(r.recoverMs) ? `${(r.recoverMs / 1_000).toFixed(1)} s` : 'never',
    Object.entries(r.errors)
      .map(([code, n]) => `${code} ×${n}`)
      .join(', ') || '-',
  ]);
  const line = (cells: string[]) => `| ${cells.join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}

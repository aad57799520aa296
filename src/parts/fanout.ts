/**
 * The fan-out part: pub/sub to every instance (Redis, or in process on one instance) and the
 * limits shared through it (connections per user, the per-user rate limit).
 */
import type { Logger } from 'pino';
import type { Config } from '../config';
import { sharedCoalescingKey, combine, supersedes } from '../contracts/coalescing';
import type { GatewayEvent } from '../contracts/events';
import { REVOCATION_RETENTION_MS } from '../auth/revocation';
import type { ConnectionRegistry, EventPubSub, RateLimiter, RevocationStore } from '../contracts/ports';
import { PostgresEventLog } from '../infra/db/durable-event-log';
import { MemoryConnectionRegistry } from '../infra/memory/memory-connection-registry';
import { MemoryPubSub } from '../infra/memory/memory-pubsub';
import { MemoryRateLimiter } from '../infra/memory/memory-rate-limiter';
import { MemoryRevocationStore } from '../infra/memory/memory-revocation-store';
import { RedisRateLimiter } from '../infra/redis/rate-limit';
import { RedisEventPubSub } from '../infra/redis/redis-pubsub';
import { RedisRevocationStore } from '../infra/redis/revocation-store';
import { RedisSocketRegistry } from '../infra/redis/socket-registry';
import type { QueueOptions } from '../lib/event-queue';
import type { DatabasePart } from './database';
import type { Part } from './part';

export interface FanoutPart extends Part {
  readonly pubsub: EventPubSub;
  readonly connections: ConnectionRegistry;
  readonly rateLimiter: RateLimiter;
  /** Revoked sessions, heard by every instance. */
  readonly revocations: RevocationStore;
  /** Delivery figures of every subscription's buffer. */
  readonly delivery: { readonly coalesced: number; readonly overflowed: number };
  /** Reconnections of Redis since start (0 in process); callable detached (the metrics read it). */
  reconnects(this: void): number;
  /**
   * The durable copy of Redis' retained log (PostgreSQL), with Redis only: the read model writes
   * it, `after` falls back to it when Redis lost the event (docs/decisions/0300).
   */
  readonly durableLog: PostgresEventLog | undefined;
}

/** Start after `database` (the durable log's sweep uses it). */
export function fanoutPart(config: Config, logger: Logger, database: Pick<DatabasePart, 'prisma'>): FanoutPart {
  const delivery = { coalesced: 0, overflowed: 0 };
  const queueOptions: QueueOptions<GatewayEvent> = {
    maxBuffered: config.delivery.maxBuffered,
    coalesceMs: config.delivery.coalesceMs,
    classify: sharedCoalescingKey,
    supersedes,
    combine,
    onCoalesced: () => void delivery.coalesced++,
    onOverflow: () => void delivery.overflowed++,
  };
  const eventLog = {
    maxEvents: config.eventLog.maxEvents,
    maxAllEvents: config.eventLog.maxAllEvents,
    maxAgeMs: config.eventLog.maxAgeSec * 1_000,
  };
  const rateOptions = { perSec: config.graphql.rateLimitPerSec, burst: config.graphql.rateLimitBurst };
  const { redis } = config;
  // Redis' streams live in memory: their durable copy lets `after` survive a Redis restart.
  const durableLog =
    redis.kind === 'redis' && eventLog.maxEvents > 0
      ? new PostgresEventLog(
          database.prisma,
          { ...eventLog, reorderWindow: Math.max(1, config.amqp.partitions) * config.amqp.prefetch },
          logger,
        )
      : undefined;
  const pubsub =
    redis.kind === 'redis'
      ? new RedisEventPubSub(redis.url, redis.topicPrefix, logger, queueOptions, eventLog, durableLog)
      : new MemoryPubSub(queueOptions, eventLog);
  const connections: ConnectionRegistry =
    redis.kind === 'redis'
      ? new RedisSocketRegistry(
          redis.url,
          { prefix: redis.topicPrefix, max: config.ws.maxSocketsPerUser, leaseMs: config.ws.socketLeaseMs },
          logger,
        )
      : new MemoryConnectionRegistry(config.ws.maxSocketsPerUser);
  const rateLimiter: RateLimiter =
    redis.kind === 'redis'
      ? new RedisRateLimiter(redis.url, { ...rateOptions, prefix: redis.topicPrefix }, logger)
      : new MemoryRateLimiter(rateOptions);
  const revocations: RevocationStore =
    redis.kind === 'redis'
      ? new RedisRevocationStore(redis.url, { prefix: redis.topicPrefix, retentionMs: REVOCATION_RETENTION_MS }, logger)
      : new MemoryRevocationStore(REVOCATION_RETENTION_MS);
  return {
    name: 'fan-out',
    pubsub,
    connections,
    rateLimiter,
    revocations,
    delivery,
    reconnects: () => (pubsub instanceof RedisEventPubSub ? pubsub.reconnects : 0),
    durableLog,
    async start() {
      durableLog?.start();
      if (pubsub instanceof RedisEventPubSub) {
        // Redis down at start-up is an outage like any other: serve, report it in /readyz, and
        // let ioredis reconnect (the bridge requeues what it cannot publish meanwhile).
        await pubsub.ready().catch((error: unknown) => logger.warn({ err: error }, 'redis unavailable at start-up; retrying'));
      }
      if (revocations instanceof RedisRevocationStore) await revocations.ready();
    },
    async stop() {
      durableLog?.stop();
      await pubsub.close();
      await Promise.all([connections.close(), rateLimiter.close(), revocations.close()]);
    },
  };
}

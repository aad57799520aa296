/**
 * Open sockets per user (`WS_MAX_SOCKETS_PER_USER`), counted across every instance.
 *
 * With Redis each user has a sorted set `<prefix>ws-sockets:<userId>` whose members are socket
 * ids scored by their lease expiry (Redis server time, so instance clocks do not matter). A Lua
 * script drops expired members, counts, and adds the new socket atomically, so two instances
 * cannot both take the last slot. Each instance refreshes the leases of its live sockets every
 * third of `WS_SOCKET_LEASE_MS`; the sockets of an instance that crashed stop counting when their
 * lease runs out. When Redis cannot answer, the socket is allowed (availability over the limit)
 * and the failure is logged.
 *
 * On a Redis Cluster each script touches one key (one slot), so it runs unchanged on the shard
 * that owns the user's set; only the lease refresh differs (see `refresh`).
 */
import type { Logger } from 'pino';
import type { ConnectionRegistry } from '../../contracts/ports';
import { redisClientName } from './client-name';
import { connectRedis, isCluster, type RedisClient } from './redis-connection';

const NOW_MS = `local t = redis.call('TIME'); local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)`;

/** KEYS[1] set; ARGV: max, leaseMs, member. Returns 1 when the slot was taken. */
const ACQUIRE = `${NOW_MS}
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1`;

/**
 * KEYS[1] set; ARGV: leaseMs, member. Extends a live socket's lease, and puts it back when Redis
 * lost it (a restart without persistence, an outage longer than the lease), so live sockets keep
 * counting. A released socket is never put back: `release` forgets it locally before its ZREM,
 * and both go over the one connection in order.
 */
const REFRESH = `${NOW_MS}
local updated = redis.call('ZADD', KEYS[1], 'CH', now + tonumber(ARGV[1]), ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return updated`;

type RegistryCommands = {
  socketAcquire(key: string, max: number, leaseMs: number, member: string): Promise<number>;
  socketRefresh(key: string, leaseMs: number, member: string): Promise<number>;
};

export class RedisSocketRegistry implements ConnectionRegistry {
  private readonly redis: RedisClient & RegistryCommands;
  private readonly live = new Map<string, string>(); // socketId -> userId
  private readonly refreshTimer: NodeJS.Timeout;

  constructor(
    url: string,
    private readonly options: { prefix: string; max: number; leaseMs: number },
    private readonly logger: Logger,
  ) {
    this.redis = connectRedis(url, {
      connectionName: redisClientName('socket-registry', options.prefix),
      maxRetriesPerRequest: 1,
      retryStrategy: (attempt: number) => Math.min(100 * 2 ** attempt, 5_000),
    }) as RedisClient & RegistryCommands;
    // Without an 'error' listener ioredis' error events crash the process.
    this.redis.on('error', (error: Error) => this.logger.warn({ err: error }, 'socket registry redis error'));
    this.redis.defineCommand('socketAcquire', { numberOfKeys: 1, lua: ACQUIRE });
    this.redis.defineCommand('socketRefresh', { numberOfKeys: 1, lua: REFRESH });
    this.refreshTimer = setInterval(() => void this.refresh(), Math.max(250, Math.floor(options.leaseMs / 3)));
    this.refreshTimer.unref();
  }

  private key(userId: string): string {
    return `${this.options.prefix}ws-sockets:${userId}`;
  }

  async acquire(userId: string, socketId: string): Promise<boolean> {
    try {
      const taken = await this.redis.socketAcquire(this.key(userId), this.options.max, this.options.leaseMs, socketId);
      if (taken === 1) this.live.set(socketId, userId);
      return taken === 1;
    } catch (error) {
      this.logger.warn({ err: error, userId }, 'socket registry unavailable: connection allowed, counted once Redis is back');
      // Refreshed like any live socket, so it counts again as soon as Redis answers.
      this.live.set(socketId, userId);
      return true;
    }
  }

  async release(userId: string, socketId: string): Promise<void> {
    this.live.delete(socketId);
    await this.redis.zrem(this.key(userId), socketId).catch((error: unknown) => {
      this.logger.debug({ err: error, userId }, 'socket registry release failed (the lease will expire)');
    });
  }

  private async refresh(): Promise<void> {
    if (this.live.size === 0 || this.redis.status !== 'ready') return;
    if (isCluster(this.redis)) {
      // A cluster pipeline must stay within one node's slots; single commands are batched per
      // node by auto-pipelining instead.
      const refreshes = [...this.live].map(([socketId, userId]) =>
        this.redis.socketRefresh(this.key(userId), this.options.leaseMs, socketId),
      );
      const failed = (await Promise.allSettled(refreshes)).filter((r) => r.status === 'rejected').length;
      if (failed > 0) this.logger.debug({ failed }, 'socket lease refresh failed');
      return;
    }
    const pipeline = this.redis.pipeline() as unknown as RegistryCommands & { exec(): Promise<unknown> };
    for (const [socketId, userId] of this.live) void pipeline.socketRefresh(this.key(userId), this.options.leaseMs, socketId);
    await pipeline.exec().catch((error: unknown) => this.logger.debug({ err: error }, 'socket lease refresh failed'));
  }

  async close(): Promise<void> {
    clearInterval(this.refreshTimer);
    await this.redis.quit().catch(() => this.redis.disconnect());
  }
}

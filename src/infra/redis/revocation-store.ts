/**
 * Revoked sessions shared by every instance, in Redis: `<prefix>sessions-revoked:<userId>` holds
 * the latest revocation's time (epoch ms) with its own expiry (the retention), so it survives a
 * gateway restart and tidies itself; the channel `<prefix>sessions-revoked` tells every instance
 * at once, so each ends its own connections of that user within the second.
 *
 * When Redis cannot answer a lookup the token is accepted and the failure logged (availability
 * over revocation, as the connection registry does); a revocation that cannot be written rejects,
 * so the administrator's mutation fails loudly and can be retried.
 */
import type { Logger } from 'pino';
import type { RevocationStore } from '../../contracts/ports';
import { redisClientName } from './client-name';
import { connectRedis, isCluster, type RedisClient } from './redis-connection';

/** Keeps the later of the stored and the new time; ARGV: time, retention ms. */
const REVOKE = `local current = tonumber(redis.call('GET', KEYS[1]) or '0')
local at = math.max(current, tonumber(ARGV[1]))
redis.call('SET', KEYS[1], at, 'PX', ARGV[2])
return at`;

type RevocationCommands = { sessionsRevoke(key: string, at: number, retentionMs: number): Promise<number> };

export class RedisRevocationStore implements RevocationStore {
  private readonly redis: RedisClient & RevocationCommands;
  private readonly subscriber: RedisClient;
  private readonly listeners: ((userId: string, revokedAt: number) => void)[] = [];
  private readonly channel: string;
  private readonly subscribed: Promise<unknown>;

  constructor(
    url: string,
    private readonly options: { prefix: string; retentionMs: number },
    private readonly logger: Logger,
  ) {
    const retryStrategy = (attempt: number) => Math.min(100 * 2 ** attempt, 5_000);
    // A Cluster too: the key is one slot, and the notification is sharded pub/sub (SPUBLISH /
    // SSUBSCRIBE on the channel's one shard), so no node relays what it does not own.
    this.redis = connectRedis(url, {
      connectionName: redisClientName('revocations', options.prefix),
      maxRetriesPerRequest: 1,
      retryStrategy,
    }) as RedisClient & RevocationCommands;
    this.subscriber = connectRedis(url, {
      connectionName: redisClientName('revocations-sub', options.prefix),
      maxRetriesPerRequest: 20,
      retryStrategy,
      shardedSubscribers: true,
    });
    // Without an 'error' listener ioredis' error events crash the process.
    this.redis.on('error', (error: Error) => this.logger.warn({ err: error }, 'revocation store redis error'));
    this.subscriber.on('error', (error: Error) => this.logger.warn({ err: error }, 'revocation subscriber redis error'));
    this.redis.defineCommand('sessionsRevoke', { numberOfKeys: 1, lua: REVOKE });
    this.channel = `${options.prefix}sessions-revoked`;
    const sharded = isCluster(this.subscriber);
    this.subscriber.on(sharded ? 'smessage' : 'message', (_channel: string, text: string) => this.heard(text));
    this.subscribed = (sharded ? this.subscriber.ssubscribe(this.channel) : this.subscriber.subscribe(this.channel)).catch(
      (error: unknown) => {
        this.logger.warn({ err: error }, 'revocation channel subscribe failed (ioredis resubscribes on reconnect)');
      },
    );
  }

  /**
   * Resolves once the notification channel is subscribed, or after `timeoutMs` (Redis down at
   * start-up is an outage like any other: ioredis subscribes once it connects).
   */
  ready(timeoutMs = 2_000): Promise<unknown> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise((resolve) => {
      timer = setTimeout(resolve, timeoutMs);
    });
    return Promise.race([this.subscribed, timeout]).finally(() => clearTimeout(timer));
  }

  private key(userId: string): string {
    return `${this.options.prefix}sessions-revoked:${userId}`;
  }

  private heard(text: string): void {
    let message: { userId?: unknown; revokedAt?: unknown };
    try {
      message = JSON.parse(text) as typeof message;
    } catch {
      return;
    }
    if (typeof message.userId !== 'string' || typeof message.revokedAt !== 'number') return;
    for (const listener of this.listeners) listener(message.userId, message.revokedAt);
  }

  async revoke(userId: string): Promise<number> {
    const at = Number(await this.redis.sessionsRevoke(this.key(userId), Date.now(), this.options.retentionMs));
    const notice = JSON.stringify({ userId, revokedAt: at });
    await (isCluster(this.redis) ? this.redis.spublish(this.channel, notice) : this.redis.publish(this.channel, notice));
    return at;
  }

  async revokedAt(userId: string): Promise<number | undefined> {
    try {
      const value = await this.redis.get(this.key(userId));
      return value === null ? undefined : Number(value);
    } catch (error) {
      this.logger.warn({ err: error, userId }, 'revocation store unavailable: token accepted');
      return undefined;
    }
  }

  onRevoked(listener: (userId: string, revokedAt: number) => void): void {
    this.listeners.push(listener);
  }

  async close(): Promise<void> {
    this.listeners.length = 0;
    await Promise.all([
      this.redis.quit().catch(() => this.redis.disconnect()),
      this.subscriber.quit().catch(() => this.subscriber.disconnect()),
    ]);
  }
}

/**
 * Per-user rate limit on HTTP GraphQL operations: a token bucket of `HTTP_RATE_LIMIT_BURST`
 * tokens refilled at `HTTP_RATE_LIMIT_PER_SEC`. Callers without a token are limited per client
 * address. Beyond it: HTTP 429 with `Retry-After` (whole seconds) and a GraphQL-shaped body whose
 * `extensions.code` is `RATE_LIMITED`.
 *
 * With Redis the bucket is shared by every instance (a Lua script on Redis server time, one hash
 * per key that expires once it would be full again); without Redis it is per instance. When
 * Redis cannot answer, the request is allowed and the failure logged. The script touches one key,
 * so on a Redis Cluster it runs unchanged on the shard that owns it.
 */
import type { Logger } from 'pino';
import type { RateDecision, RateLimiter } from '../../contracts/ports';
import type { RateLimitOptions } from '../memory/memory-rate-limiter';
import { redisClientName } from './client-name';
import { connectRedis, type RedisClient } from './redis-connection';

/** KEYS[1] bucket; ARGV: perSec, burst. Returns { allowed (1|0), retryAfterSec }. */
const TAKE = `local t = redis.call('TIME'); local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rate = tonumber(ARGV[1]); local burst = tonumber(ARGV[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) / 1000 * rate)
local allowed = 0
local retry = 0
if tokens >= 1 then tokens = tokens - 1; allowed = 1 else retry = math.ceil((1 - tokens) / rate) end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return { allowed, retry }`;

export class RedisRateLimiter implements RateLimiter {
  private readonly redis: RedisClient & { rateTake(key: string, perSec: number, burst: number): Promise<[number, number]> };

  constructor(
    url: string,
    private readonly options: RateLimitOptions & { readonly prefix: string },
    private readonly logger: Logger,
  ) {
    this.redis = connectRedis(url, {
      connectionName: redisClientName('rate-limit', options.prefix),
      maxRetriesPerRequest: 1,
      retryStrategy: (attempt: number) => Math.min(100 * 2 ** attempt, 5_000),
    }) as RedisRateLimiter['redis'];
    // Without an 'error' listener ioredis' error events crash the process.
    this.redis.on('error', (error: Error) => this.logger.warn({ err: error }, 'rate limit redis error'));
    this.redis.defineCommand('rateTake', { numberOfKeys: 1, lua: TAKE });
  }

  async take(key: string): Promise<RateDecision> {
    if (this.options.perSec === 0) return { allowed: true };
    try {
      const [allowed, retryAfterSec] = await this.redis.rateTake(
        `${this.options.prefix}rate:${key}`,
        this.options.perSec,
        this.options.burst,
      );
      return allowed === 1 ? { allowed: true } : { allowed: false, retryAfterSec: Math.max(1, retryAfterSec) };
    } catch (error) {
      this.logger.warn({ err: error }, 'rate limiter unavailable: request allowed');
      return { allowed: true };
    }
  }

  async close(): Promise<void> {
    await this.redis.quit().catch(() => this.redis.disconnect());
  }
}

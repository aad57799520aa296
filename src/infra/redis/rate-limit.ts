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
import type { RequestHandler } from 'express';
import type { Logger } from 'pino';
import { ErrorCode } from '../../contracts/errors';
import { redisClientName } from './client-name';
import { connectRedis, type RedisClient } from './redis-connection';

export type RateDecision = { readonly allowed: true } | { readonly allowed: false; readonly retryAfterSec: number };

export interface RateLimiter {
  take(key: string): Promise<RateDecision>;
  close(): Promise<void>;
}

export interface RateLimitOptions {
  /** Tokens added per second; 0 disables the limit. */
  readonly perSec: number;
  /** Bucket size: requests allowed at once. */
  readonly burst: number;
}

const retryAfter = (missing: number, perSec: number) => Math.max(1, Math.ceil(missing / perSec));

export class MemoryRateLimiter implements RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  private lastSweep = Date.now();

  constructor(private readonly options: RateLimitOptions) {}

  async take(key: string): Promise<RateDecision> {
    const { perSec, burst } = this.options;
    if (perSec === 0) return { allowed: true };
    const now = Date.now();
    this.sweep(now);
    const bucket = this.buckets.get(key) ?? { tokens: burst, at: now };
    bucket.tokens = Math.min(burst, bucket.tokens + ((now - bucket.at) / 1000) * perSec);
    bucket.at = now;
    this.buckets.set(key, bucket);
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return { allowed: true };
    }
    return { allowed: false, retryAfterSec: retryAfter(1 - bucket.tokens, perSec) };
  }

  /** Forgets buckets that would be full again (bounded memory with many callers). */
  private sweep(now: number): void {
    const fullAfterMs = (this.options.burst / this.options.perSec) * 1000;
    if (now - this.lastSweep < fullAfterMs) return;
    this.lastSweep = now;
    for (const [key, bucket] of this.buckets) if (now - bucket.at >= fullAfterMs) this.buckets.delete(key);
  }

  async close(): Promise<void> {
    this.buckets.clear();
  }
}

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

/** Express middleware: `keyOf` names the caller (user id, else client address). */
export function rateLimitMiddleware(limiter: RateLimiter, keyOf: (req: Parameters<RequestHandler>[0], res: Parameters<RequestHandler>[1]) => string): RequestHandler {
  return (req, res, next) => {
    limiter.take(keyOf(req, res)).then(
      (decision) => {
        if (decision.allowed) return next();
        res
          .status(429)
          .set('Retry-After', String(decision.retryAfterSec))
          .json({
            errors: [
              {
                message: `Rate limit exceeded: retry after ${decision.retryAfterSec} s`,
                extensions: { code: ErrorCode.RATE_LIMITED, retryAfter: decision.retryAfterSec },
              },
            ],
          });
      },
      next,
    );
  };
}

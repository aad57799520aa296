/** The per-user token bucket on one instance (no Redis): the in-process `RateLimiter`. */
import type { RateDecision, RateLimiter } from '../../contracts/ports';

export interface RateLimitOptions {
  /** Tokens added per second; 0 disables the limit. */
  readonly perSec: number;
  /** Bucket size: requests allowed at once. */
  readonly burst: number;
}

export const retryAfter = (missing: number, perSec: number) => Math.max(1, Math.ceil(missing / perSec));

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

/**
 * The HTTP side of the per-user rate limit (`HTTP_RATE_LIMIT_PER_SEC` / `_BURST`): beyond it,
 * HTTP 429 with `Retry-After` (whole seconds) and a GraphQL-shaped body whose `extensions.code`
 * is `RATE_LIMITED`. The limiter itself (Redis or in memory) is a port (contracts/ports.ts).
 */
import type { RequestHandler } from 'express';
import { ErrorCode } from '../../contracts/errors';
import type { RateLimiter } from '../../contracts/ports';

/** Express middleware: `keyOf` names the caller (user id, else client address). */
export function rateLimitMiddleware(
  limiter: RateLimiter,
  keyOf: (req: Parameters<RequestHandler>[0], res: Parameters<RequestHandler>[1]) => string,
): RequestHandler {
  return (req, res, next) => {
    limiter.take(keyOf(req, res)).then((decision) => {
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
    }, next);
  };
}

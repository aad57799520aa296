/**
 * `POST /dev/token`: GraphiQL's "act as user / as admin" control, so that a newcomer on the
 * embedded default can run operations without a second terminal for `npm run token`.
 *
 * Mounted only on the embedded default, outside production, while the gateway verifies with the
 * built-in development secret (app.ts decides; production never mounts it). That secret is in
 * the source, so anyone could sign such tokens anyway: the route gives away nothing a configured
 * JWT_SECRET protects, which is why it does not mount when one is set.
 *
 * Body: `{ "sub": "alice", "admin"?: false }`. Answers 200 `{ token, expiresAt }` (a token for
 * DEV_TOKEN_TTL_SEC; `admin: true` adds the `admin` role), 400 BAD_USER_INPUT for a bad body.
 */
import express, { type Router } from 'express';
import type { Logger } from 'pino';
import { signDevelopmentToken } from '../../auth/jwt';
import { ErrorCode } from '../../contracts/errors';

export const DEV_TOKEN_PATH = '/dev/token';

/** Short-lived: long enough to try things out, short enough that a leaked one soon stops working. */
export const DEV_TOKEN_TTL_SEC = 900;

/** A user id as the platform's are: printable, no spaces, bounded. */
const SUBJECT = /^[A-Za-z0-9._:@-]{1,128}$/;

export function devTokenRouter(deps: { secret: string; issuer?: string; audience?: string; logger: Logger }): Router {
  const { secret, issuer, audience, logger } = deps;
  const router = express.Router();
  const fail = (res: express.Response, message: string) =>
    res.status(400).json({ errors: [{ message, extensions: { code: ErrorCode.BAD_USER_INPUT } }] });

  router.post(DEV_TOKEN_PATH, express.json({ limit: 1_024 }), async (req, res, next) => {
    const { sub, admin } = (req.body ?? {}) as Record<string, unknown>;
    if (typeof sub !== 'string' || !SUBJECT.test(sub)) {
      return fail(res, 'sub must be a user id of 1-128 letters, digits or ._:@- (e.g. "alice")');
    }
    if (admin !== undefined && typeof admin !== 'boolean') return fail(res, 'admin must be true or false');
    try {
      // `await` whether signing is synchronous (jsonwebtoken) or not (jose).
      const token = await signDevelopmentToken(
        secret,
        { sub, roles: admin ? ['admin'] : [], username: sub },
        { expiresInSec: DEV_TOKEN_TTL_SEC, issuer, audience },
      );
      logger.info({ sub, admin: admin === true }, 'development token issued');
      res.set('cache-control', 'no-store').json({ token, expiresAt: new Date(Date.now() + DEV_TOKEN_TTL_SEC * 1_000).toISOString() });
    } catch (error) {
      next(error);
    }
  });
  return router;
}

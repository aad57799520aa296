/**
 * GraphQL over HTTP on `/graphql` (queries and mutations), through Apollo Server 5's Express
 * integration, sharing with the other transports the operation layer's context, error
 * formatting, validation limits and per-user rate limit:
 *
 * - the bearer token is verified once per request (the rate limit is per user); a bad token is
 *   `UNAUTHENTICATED` on every operation, no token at all leaves only `__typename` and
 *   introspection (the resolvers' authorization refuses the rest);
 * - NUL characters anywhere in the request are refused up front (`BAD_USER_INPUT`);
 * - body-parser failures (too large, not JSON) answer as GraphQL-shaped JSON, never an HTML page.
 */
import type { ApolloServer } from '@apollo/server';
import { expressMiddleware } from '@as-integrations/express5';
import express, { type ErrorRequestHandler, type Request, type RequestHandler, type Router } from 'express';
import type { Logger } from 'pino';
import { stripBearer, TokenError } from '../../auth/jwt';
import type { AuthUser, GraphQLContext } from '../../contracts/context';
import { ErrorCode, UnauthenticatedError } from '../../contracts/errors';
import type { RateLimiter } from '../../contracts/ports';
import { containsNul, NUL_MESSAGE } from '../../graphql/nul-guard';
import type { OperationLayer, TokenCheck } from '../../graphql/operation-layer';
import { rateLimitMiddleware } from './rate-limit';

type Authentication = { user: AuthUser | null; error?: UnauthenticatedError };

export function graphqlHttpRouter(deps: {
  apollo: ApolloServer<GraphQLContext>;
  layer: OperationLayer;
  verifier: TokenCheck;
  rateLimiter: RateLimiter;
  bodyLimitBytes: number;
  /** Subscriptions over multipart HTTP and SSE (./streaming.ts), in front of Apollo. */
  streaming?: RequestHandler;
}): Router {
  const { apollo, layer, verifier, rateLimiter } = deps;

  async function authenticate(req: Request): Promise<Authentication> {
    const header = req.headers.authorization;
    // EventSource cannot send headers: /graphql/stream's `?token=` names the caller too, so its
    // rate limit is the user's own bucket, not one shared by everyone behind the same address.
    const queryToken = !header && req.path === '/stream' && typeof req.query.token === 'string' ? req.query.token : undefined;
    const token = header ? stripBearer(header) : queryToken;
    if (!token) return { user: null };
    try {
      return { user: await verifier.verify(token) };
    } catch (error) {
      const message = error instanceof TokenError ? `Unauthenticated: ${error.message}` : 'Unauthenticated';
      return { user: null, error: new UnauthenticatedError(message) };
    }
  }
  const refuseNul: RequestHandler = (req, res, next) => {
    if (!containsNul(req.body) && !containsNul(req.query)) return next();
    res.status(400).json({ errors: [{ message: NUL_MESSAGE, extensions: { code: ErrorCode.BAD_USER_INPUT } }] });
  };
  const authenticateRequest: RequestHandler = (req, res, next) => {
    authenticate(req).then((auth) => {
      res.locals.auth = auth;
      next();
    }, next);
  };

  const router = express.Router();
  router.use(
    '/graphql',
    express.json({ limit: deps.bodyLimitBytes }),
    refuseNul,
    authenticateRequest,
    rateLimitMiddleware(rateLimiter, (req, res) => {
      const auth = res.locals.auth as Authentication;
      return auth.user ? `user:${auth.user.id}` : `addr:${req.socket.remoteAddress ?? 'unknown'}`;
    }),
    deps.streaming ?? ((_req, _res, next) => next()),
    expressMiddleware(apollo, {
      context: async ({ res }): Promise<GraphQLContext> => {
        const auth = res.locals.auth as Authentication;
        if (auth.error) throw auth.error;
        return layer.context(auth.user);
      },
    }),
  );
  return router;
}

/** Body-parser failures (too large, not JSON) as GraphQL-shaped JSON, never an HTML stack page. */
export function jsonErrors(logger: Logger): ErrorRequestHandler {
  return (error: unknown, _req, res, next) => {
    if (res.headersSent) return next(error);
    // body-parser's errors carry the HTTP status they mean (413, 400); anything else is ours: 500.
    const reported = typeof error === 'object' && error !== null && 'status' in error ? error.status : undefined;
    const status = typeof reported === 'number' && reported >= 400 && reported < 500 ? reported : 500;
    if (status === 500) logger.error({ err: error }, 'http request failed');
    const message = status === 413 ? 'Request body too large' : status === 500 ? 'Internal server error' : 'Malformed request body';
    res.status(status).json({
      errors: [{ message, extensions: { code: status === 500 ? ErrorCode.INTERNAL_SERVER_ERROR : ErrorCode.BAD_REQUEST } }],
    });
  };
}

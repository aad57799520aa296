/**
 * GraphQL over WebSocket (`graphql-transport-ws`) on the HTTP server's `/graphql` path. This file
 * is socket glue only: authentication is `TokenVerifier`, authorization lives in the resolvers.
 *
 * - `connection_init` must carry a valid token (`authorization`, `Authorization` or `token`,
 *   with or without `Bearer `); otherwise the socket is closed with 4403 Forbidden.
 * - A socket whose token expires while open is closed with 4403 at expiry, so the client
 *   reconnects with a fresh token.
 */
import type { Server as HttpServer } from 'node:http';
import type { GraphQLSchema } from 'graphql';
import { CloseCode } from 'graphql-ws';
import { useServer } from 'graphql-ws/use/ws';
import type { Logger } from 'pino';
import { WebSocketServer } from 'ws';
import type { AuthUser } from '../../auth/auth-user';
import type { GraphQLContext, Services } from '../../auth/context';
import { stripBearer, type TokenVerifier } from '../../auth/jwt';
import type { ErrorFormatter } from '../http/format-error';

/** setTimeout's ceiling (~24.8 days); tokens living longer are re-armed. */
const MAX_TIMER_MS = 2_147_483_647;

type SocketState = {
  user?: AuthUser;
  expiryTimer?: NodeJS.Timeout;
};

export interface GraphQLWsServer {
  /** Open sockets. */
  readonly socketCount: () => number;
  /** Closes every socket with 1001 and stops accepting new ones. */
  close(timeoutMs: number): Promise<void>;
}

export function tokenFromConnectionParams(params: Readonly<Record<string, unknown>> | undefined): string | undefined {
  if (!params) return undefined;
  for (const key of ['authorization', 'Authorization', 'token']) {
    const value = params[key];
    if (typeof value === 'string' && value.trim() !== '') return stripBearer(value);
  }
  return undefined;
}

export function startGraphQLWsServer(deps: {
  httpServer: HttpServer;
  schema: GraphQLSchema;
  services: Services;
  verifier: TokenVerifier;
  formatError: ErrorFormatter;
  options: { connectionInitTimeoutMs: number; maxPayloadBytes: number; keepAliveMs: number; production: boolean };
  logger: Logger;
}): GraphQLWsServer {
  const { httpServer, schema, services, verifier, formatError, options, logger } = deps;
  const wss = new WebSocketServer({ server: httpServer, path: '/graphql', maxPayload: options.maxPayloadBytes });
  wss.on('error', (error) => logger.warn({ err: error }, 'websocket server error'));
  wss.on('connection', (socket) => socket.on('error', (error) => logger.debug({ err: error }, 'websocket error')));

  const armExpiry = (state: SocketState, close: () => void, expiresAt: number) => {
    const remaining = expiresAt - Date.now();
    state.expiryTimer = setTimeout(
      () => (remaining > MAX_TIMER_MS ? armExpiry(state, close, expiresAt) : close()),
      Math.max(0, Math.min(remaining, MAX_TIMER_MS)),
    );
    state.expiryTimer.unref();
  };

  const disposable = useServer<Record<string, unknown> | undefined, SocketState>(
    {
      schema,
      isProd: options.production,
      connectionInitWaitTimeout: options.connectionInitTimeoutMs,
      onConnect(ctx) {
        const token = tokenFromConnectionParams(ctx.connectionParams);
        if (!token) return false; // 4403 Forbidden
        try {
          const user = verifier.verify(token);
          // The clock tolerance helps HTTP; a socket would be closed at expiry at once anyway.
          if (user.expiresAt <= Date.now()) return false;
          ctx.extra.user = user;
          armExpiry(ctx.extra, () => ctx.extra.socket.close(CloseCode.Forbidden, 'Forbidden: token expired'), user.expiresAt);
          return true;
        } catch (error) {
          logger.debug({ err: error }, 'websocket connection refused');
          return false;
        }
      },
      onClose(ctx) {
        clearTimeout(ctx.extra.expiryTimer);
      },
      context(ctx): GraphQLContext {
        return { user: ctx.extra.user ?? null, services };
      },
      onError(_ctx, _id, _payload, errors) {
        return errors.map((error) => formatError(error.toJSON(), error));
      },
      onNext(_ctx, _id, _payload, _args, result) {
        if (!result.errors) return undefined;
        return { ...result, errors: result.errors.map((error) => formatError(error.toJSON(), error)) };
      },
    },
    wss,
    options.keepAliveMs,
  );

  return {
    socketCount: () => wss.clients.size,
    async close(timeoutMs) {
      const closing = disposable.dispose();
      const timer = setTimeout(() => {
        for (const client of wss.clients) client.terminate();
      }, timeoutMs);
      try {
        await closing;
      } finally {
        clearTimeout(timer);
      }
    },
  };
}

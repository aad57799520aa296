/**
 * GraphQL over WebSocket (`graphql-transport-ws`) on the HTTP server's `/graphql` path. This file
 * is socket glue only: authentication is `TokenVerifier`, authorization lives in the resolvers.
 *
 * - `connection_init` must carry a valid token (`authorization`, `Authorization` or `token`,
 *   with or without `Bearer `); otherwise the socket is closed with 4403 Forbidden.
 * - A socket whose token expires while open is closed with 4403 at expiry, so the client
 *   reconnects with a fresh token.
 * - Limits: sockets per user across instances (close 1008, ./limits.ts), operations per socket
 *   (`TOO_MANY_SUBSCRIPTIONS` on that operation, the socket stays open), document tokens, depth
 *   and complexity (validation errors on that operation), message size (ws closes with 1009).
 * - Slow consumers: a socket holding more than `maxBufferedBytes` unsent bytes, or one of whose
 *   subscriptions overflowed its event buffer, is closed with 1013; its subscriptions are
 *   released at once and the socket is destroyed if the peer has not completed the close
 *   handshake within `slowCloseGraceMs`.
 */
import { randomUUID } from 'node:crypto';
import type { Server as HttpServer } from 'node:http';
import type { Socket } from 'node:net';
import {
  createSourceEventStream,
  execute,
  getOperationAST,
  GraphQLError,
  NoSchemaIntrospectionCustomRule,
  parse,
  specifiedRules,
  validate,
  type DocumentNode,
  type ExecutionArgs,
  type ExecutionResult,
  type GraphQLSchema,
  type ValidationRule,
} from 'graphql';
import { CloseCode, type Context } from 'graphql-ws';
import { useServer, type Extra } from 'graphql-ws/use/ws';
import type { Logger } from 'pino';
import { WebSocket, WebSocketServer } from 'ws';
import type { AuthUser } from '../../auth/auth-user';
import type { ConnectionControl, GraphQLContext, Services } from '../../auth/context';
import { stripBearer, type TokenVerifier } from '../../auth/jwt';
import { ErrorCode, TooManySubscriptionsError } from '../../contracts/errors';
import { containsNul, NUL_MESSAGE } from '../../graphql/nul-guard';
import type { RateLimiter } from '../http/rate-limit';
import type { ErrorFormatter } from '../http/format-error';
import type { SocketRegistry } from './limits';
import { isPushSource, pushSubscription, SharedExecution } from './push-delivery';

/** Parsed and validated documents kept by query text (clients send the same few documents). */
const MAX_CACHED_DOCUMENTS = 1_000;

/** setTimeout's ceiling (~24.8 days); tokens living longer are re-armed. */
const MAX_TIMER_MS = 2_147_483_647;

/** WebSocket close codes beyond graphql-ws' own (CONTRACT §3). */
export const WsCloseCode = {
  /** The user already has `WS_MAX_SOCKETS_PER_USER` sockets open. */
  PolicyViolation: 1008,
  /** The client does not read its messages fast enough. */
  TryAgainLater: 1013,
} as const;

type SocketState = {
  user?: AuthUser;
  expiryTimer?: NodeJS.Timeout;
  socketId?: string;
  /** The slot in the per-user socket count, while held. */
  slot?: { userId: string; socketId: string };
  closed?: boolean;
  slowClosed?: boolean;
  terminateTimer?: NodeJS.Timeout;
  connection?: ConnectionControl;
  /** Pushed subscriptions waiting for the socket to drain. */
  drain?: Set<() => void>;
};

export interface WsCounters {
  /** Sockets closed with 1013 because they fell behind (unsent bytes or event-buffer overflow). */
  slowConsumerCloses: number;
  /** Sockets closed with 1008 because their user had too many. */
  socketLimitCloses: number;
  /** Operations refused with TOO_MANY_SUBSCRIPTIONS. */
  tooManySubscriptions: number;
  /** Subscription payloads executed: one per event and distinct selection, however many receive it. */
  payloadExecutions: number;
}

export interface WsOptions {
  connectionInitTimeoutMs: number;
  maxPayloadBytes: number;
  keepAliveMs: number;
  maxSubscriptionsPerSocket: number;
  maxBufferedBytes: number;
  slowCloseGraceMs: number;
  /** Parser and validation limits (the same as HTTP's). */
  maxTokens: number;
  validationRules: readonly ValidationRule[];
  /** `GRAPHQL_INTROSPECTION`: refused over the socket too when false. */
  introspection: boolean;
  /**
   * The HTTP rate limiter: queries and mutations sent over the socket spend the same per-user
   * budget, so the socket is no way around it.
   */
  rateLimiter?: RateLimiter;
  production: boolean;
}

export interface GraphQLWsServer {
  /** Open sockets. */
  readonly socketCount: () => number;
  readonly counters: Readonly<WsCounters>;
  /** Closes every socket with 1001 and stops accepting new ones. */
  close(timeoutMs: number): Promise<void>;
}

function isAsyncIterableSource(value: AsyncIterable<unknown> | ExecutionResult): value is AsyncIterable<unknown> {
  return typeof (value as Partial<AsyncIterable<unknown>>)[Symbol.asyncIterator] === 'function';
}

/** graphql-js' own mapping, for a stream that cannot be pushed: one execution per event. */
async function* executeEach(source: AsyncIterableIterator<unknown>, args: ExecutionArgs): AsyncGenerator<ExecutionResult> {
  for await (const event of source) yield await execute({ ...args, rootValue: event });
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
  sockets: SocketRegistry;
  options: WsOptions;
  logger: Logger;
}): GraphQLWsServer {
  const { httpServer, schema, services, verifier, formatError, sockets, options, logger } = deps;
  const instanceId = randomUUID();
  let socketSeq = 0;
  const counters: WsCounters = { slowConsumerCloses: 0, socketLimitCloses: 0, tooManySubscriptions: 0, payloadExecutions: 0 };
  const rules = [
    ...specifiedRules,
    ...options.validationRules,
    ...(options.introspection ? [] : [NoSchemaIntrospectionCustomRule]),
  ];
  const execution = new SharedExecution(schema, formatError, () => counters.payloadExecutions++);
  /** Query text -> parsed document that passed validation (most recently used last). */
  const documents = new Map<string, DocumentNode>();
  const wss = new WebSocketServer({ server: httpServer, path: '/graphql', maxPayload: options.maxPayloadBytes });
  wss.on('error', (error) => logger.warn({ err: error }, 'websocket server error'));

  const armExpiry = (state: SocketState, close: () => void, expiresAt: number) => {
    const remaining = expiresAt - Date.now();
    state.expiryTimer = setTimeout(
      () => (remaining > MAX_TIMER_MS ? armExpiry(state, close, expiresAt) : close()),
      Math.max(0, Math.min(remaining, MAX_TIMER_MS)),
    );
    state.expiryTimer.unref();
  };

  type Ctx = Context<Record<string, unknown> | undefined, Extra & Partial<SocketState>>;

  /** 1013: release the socket's subscriptions now, destroy it if the peer never completes the close. */
  const closeSlow = (ctx: Ctx, reason: string) => {
    const state = ctx.extra;
    if (state.slowClosed || state.closed) return;
    state.slowClosed = true;
    counters.slowConsumerCloses++;
    const socket = ctx.extra.socket;
    logger.warn({ userId: state.user?.id, reason, bufferedAmount: socket.bufferedAmount }, 'slow consumer: closing socket with 1013');
    socket.close(WsCloseCode.TryAgainLater, 'Try again later: client too slow');
    for (const subscription of Object.values(ctx.subscriptions)) {
      const iterator = subscription as AsyncIterator<unknown> | null;
      void iterator?.return?.()?.catch?.(() => undefined);
    }
    state.terminateTimer = setTimeout(() => socket.terminate(), options.slowCloseGraceMs);
    state.terminateTimer.unref();
  };

  /**
   * Checks the unsent bytes right after every send. (Checking before sends is not enough: each
   * subscription awaits its own send, so once the peer stops reading they can all block at once
   * with the total just under the bound, and no later send would ever look again.)
   */
  const watchUnsentBytes = (ctx: Ctx) => {
    const socket = ctx.extra.socket;
    const send = socket.send.bind(socket) as (...args: unknown[]) => void;
    socket.send = ((...args: unknown[]) => {
      send(...args);
      if (socket.bufferedAmount > options.maxBufferedBytes) closeSlow(ctx, `${socket.bufferedAmount} unsent bytes`);
    }) as typeof socket.send;
  };

  /** The socket and operation id behind each operation's context (for the pushed frames). */
  const operations = new WeakMap<object, { ctx: Ctx; id: string }>();

  const cachedDocument = (query: string): DocumentNode | undefined => {
    const document = documents.get(query);
    if (document) {
      documents.delete(query);
      documents.set(query, document);
    }
    return document;
  };
  const cacheDocument = (query: string, document: DocumentNode) => {
    documents.set(query, document);
    if (documents.size > MAX_CACHED_DOCUMENTS) documents.delete(documents.keys().next().value as string);
  };

  /**
   * Subscriptions: run the field's `subscribe` (authorization, Redis channel) as graphql-js would,
   * then push its events onto the socket (./push-delivery.ts) instead of letting graphql-ws pull
   * and execute them one subscriber at a time.
   */
  const subscribe = async (args: ExecutionArgs): Promise<ExecutionResult | AsyncIterableIterator<ExecutionResult>> => {
    const source = await createSourceEventStream(args);
    if (!isAsyncIterableSource(source)) return source;
    const operation = operations.get(args.contextValue as object);
    if (!operation || !isPushSource<object>(source)) return executeEach(source as AsyncIterableIterator<unknown>, args);
    const { ctx, id } = operation;
    const socket = ctx.extra.socket;
    const transport = (socket as unknown as { _socket?: Socket })._socket;
    const key = execution.selectionKey(args);
    const prefix = `{"id":${JSON.stringify(id)},"type":"next","payload":`;
    return pushSubscription<object>(
      source,
      (event) => {
        if (socket.readyState !== WebSocket.OPEN || transport?.writableNeedDrain) return false;
        socket.send(`${prefix}${execution.payload(event, key, args)}}`);
        return true;
      },
      (ctx.extra.drain ??= new Set()),
    );
  };

  const disposable = useServer<Record<string, unknown> | undefined, SocketState>(
    {
      schema,
      isProd: options.production,
      connectionInitWaitTimeout: options.connectionInitTimeoutMs,
      async onConnect(ctx) {
        const token = tokenFromConnectionParams(ctx.connectionParams);
        if (!token) return false; // 4403 Forbidden
        let user: AuthUser;
        try {
          user = await verifier.verify(token);
        } catch (error) {
          logger.debug({ err: error }, 'websocket connection refused');
          return false;
        }
        // The clock tolerance helps HTTP; a socket would be closed at expiry at once anyway.
        if (user.expiresAt <= Date.now()) return false;
        const socketId = `${instanceId}:${++socketSeq}`;
        const acquired = await sockets.acquire(user.id, socketId);
        if (ctx.extra.closed) {
          // The peer left while the slot was being taken.
          if (acquired) await sockets.release(user.id, socketId);
          return false;
        }
        if (!acquired) {
          counters.socketLimitCloses++;
          logger.info({ userId: user.id }, 'too many sockets for this user: closing with 1008');
          // graphql-ws then closes with 4403, which ws ignores: the socket is already closing.
          ctx.extra.socket.close(WsCloseCode.PolicyViolation, 'Too many connections for this user');
          return false;
        }
        ctx.extra.slot = { userId: user.id, socketId };
        ctx.extra.user = user;
        ctx.extra.connection = { slowConsumer: (reason) => closeSlow(ctx, reason) };
        watchUnsentBytes(ctx);
        const drain = (ctx.extra.drain ??= new Set());
        (ctx.extra.socket as unknown as { _socket?: Socket })._socket?.on('drain', () => {
          for (const flush of drain) flush();
        });
        armExpiry(ctx.extra, () => ctx.extra.socket.close(CloseCode.Forbidden, 'Forbidden: token expired'), user.expiresAt);
        return true;
      },
      async onClose(ctx) {
        ctx.extra.closed = true;
        clearTimeout(ctx.extra.expiryTimer);
        clearTimeout(ctx.extra.terminateTimer);
        const slot = ctx.extra.slot;
        ctx.extra.slot = undefined;
        if (slot) await sockets.release(slot.userId, slot.socketId);
      },
      async onSubscribe(ctx, _id, payload) {
        // `ctx.subscriptions` already holds this operation's placeholder.
        if (Object.keys(ctx.subscriptions).length > options.maxSubscriptionsPerSocket) {
          counters.tooManySubscriptions++;
          return [new TooManySubscriptionsError(options.maxSubscriptionsPerSocket)];
        }
        // Parse and validate here rather than in graphql-ws: a syntax error becomes an error on
        // this operation (graphql-ws would close the socket with 4500), and the token and cost
        // limits apply exactly as on HTTP.
        if (containsNul(payload.query) || containsNul(payload.variables)) {
          return [new GraphQLError(NUL_MESSAGE, { extensions: { code: ErrorCode.BAD_USER_INPUT } })];
        }
        let document = cachedDocument(payload.query);
        if (!document) {
          try {
            document = parse(payload.query, { maxTokens: options.maxTokens });
          } catch (error) {
            const message = error instanceof Error ? error.message : String(error);
            return [new GraphQLError(message, { extensions: { code: 'GRAPHQL_PARSE_FAILED' } })];
          }
          const errors = validate(schema, document, rules);
          if (errors.length > 0) return [...errors];
          cacheDocument(payload.query, document);
        }
        const operation = getOperationAST(document, payload.operationName)?.operation;
        if (operation !== 'subscription' && options.rateLimiter && ctx.extra.user) {
          const decision = await options.rateLimiter.take(`user:${ctx.extra.user.id}`);
          if (!decision.allowed) {
            return [
              new GraphQLError(`Rate limit exceeded: retry after ${decision.retryAfterSec} s`, {
                extensions: { code: ErrorCode.RATE_LIMITED, retryAfter: decision.retryAfterSec },
              }),
            ];
          }
        }
        return { schema, document, variableValues: payload.variables, operationName: payload.operationName };
      },
      context(ctx, id): GraphQLContext {
        const context = { user: ctx.extra.user ?? null, services, connection: ctx.extra.connection };
        operations.set(context, { ctx, id });
        return context;
      },
      subscribe,
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

  // Registered after graphql-ws' own: protocol errors (invalid UTF-8 1007, oversize 1009, bad
  // frames 1002) are closed by ws with the right code before it emits 'error'; graphql-ws would
  // print each one with console.error (outside the logger, once per hostile client). One listener
  // that logs at debug replaces it (ws requires one, or the error would crash the process).
  wss.on('connection', (socket) => {
    socket.removeAllListeners('error');
    socket.on('error', (error) => logger.debug({ err: error }, 'websocket protocol error'));
  });

  return {
    socketCount: () => wss.clients.size,
    counters,
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

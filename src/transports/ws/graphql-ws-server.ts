/**
 * GraphQL over WebSocket on the HTTP server's `/graphql` path: the `graphql-transport-ws` protocol
 * (graphql-ws' PROTOCOL.md), served here rather than by graphql-ws' `useServer`. It speaks the
 * protocol with graphql-ws' own pieces (subprotocol negotiation, message validation, close codes)
 * and every graphql-ws and Apollo client works unchanged; what it does not take from `useServer`
 * is its cost: per operation a suspended async function holding the message, its parse, the
 * execution arguments and three closures, a pulled iterator and one execution per event and
 * subscriber, and per socket a ping interval (measured: ≈14.5 KB per subscribed socket against
 * ≈3 KB for bare ws, 3.5–4.3x its CPU per delivery; see the README's benchmark). Here a socket is
 * one `Connection` object and an operation one small object; events are pushed as `next` frames
 * (./push-delivery.ts); one interval pings every socket.
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
 *   handshake within `slowCloseGraceMs`. While a socket's send buffer is over its high-water
 *   mark, events wait in each subscription's bounded, coalescing buffer until it drains.
 * - Protocol errors close as graphql-ws does: 4400 invalid message, 4401 subscribe before the
 *   acknowledgement, 4406 wrong subprotocol, 4408 no `connection_init` in time, 4409 duplicate
 *   operation id, 4429 second `connection_init`, 4500 anything unexpected; 1001 on shutdown.
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
  type GraphQLFormattedError,
  type GraphQLSchema,
  type OperationTypeNode,
  type ValidationRule,
} from 'graphql';
import {
  CloseCode,
  GRAPHQL_TRANSPORT_WS_PROTOCOL,
  handleProtocols,
  MessageType,
  parseMessage,
  type Message,
  type SubscribePayload,
} from 'graphql-ws';
import type { Logger } from 'pino';
import { WebSocket, WebSocketServer, type RawData } from 'ws';
import type { AuthUser } from '../../auth/auth-user';
import type { ConnectionControl, GraphQLContext, Services } from '../../contracts/context';
import { stripBearer, type TokenVerifier } from '../../auth/jwt';
import { ErrorCode, TooManySubscriptionsError } from '../../contracts/errors';
import { containsNul, NUL_MESSAGE } from '../../graphql/nul-guard';
import type { RateLimiter } from '../../infra/redis/rate-limit';
import type { ErrorFormatter } from '../../graphql/format-error';
import type { SocketRegistry } from '../../infra/redis/socket-registry';
import { isPushSource, SharedExecution, type PushSource } from '../../graphql/push-delivery';

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

export function tokenFromConnectionParams(params: Readonly<Record<string, unknown>> | undefined): string | undefined {
  if (!params) return undefined;
  for (const key of ['authorization', 'Authorization', 'token']) {
    const value = params[key];
    if (typeof value === 'string' && value.trim() !== '') return stripBearer(value);
  }
  return undefined;
}


/** Close reasons are at most 123 bytes (RFC 6455). */
function closeReason(reason: string): string {
  return Buffer.byteLength(reason) <= 123 ? reason : `${Buffer.from(reason).subarray(0, 120).toString()}...`;
}

/** One socket: its protocol state, its user once acknowledged, its live operations. */
class Connection implements ConnectionControl {
  initReceived = false;
  acknowledged = false;
  closed = false;
  slowClosed = false;
  /** Answered the last keep-alive ping. */
  alive = true;
  /** A 'drain' listener is armed on the transport. */
  drainArmed = false;
  user: AuthUser | undefined;
  /** The slot in the per-user socket count, while held. */
  slot: { readonly userId: string; readonly socketId: string } | undefined;
  initTimer: NodeJS.Timeout | undefined;
  expiryTimer: NodeJS.Timeout | undefined;
  terminateTimer: NodeJS.Timeout | undefined;
  /** Live operations by id; null while one is being set up or a query runs. */
  readonly operations = new Map<string, Operation | null>();
  /** The TCP socket under the WebSocket: its write buffer tells whether the peer keeps up. */
  readonly transport: Socket | undefined;

  constructor(
    readonly socket: WebSocket,
    private readonly hub: Hub,
  ) {
    this.transport = (socket as unknown as { _socket?: Socket })._socket;
  }

  slowConsumer(reason: string): void {
    this.hub.closeSlow(this, reason);
  }
}

/** What operations need from the server. */
interface Hub {
  send(connection: Connection, frame: string): void;
  closeSlow(connection: Connection, reason: string): void;
  awaitDrain(connection: Connection): void;
}

interface Operation {
  /** Releases the operation (the client completed it or the socket closed); sends nothing. */
  stop(): void;
  /** Offers events that waited for the socket to drain. */
  flush(): void;
}

/** A live subscription whose events are pushed onto the socket as `next` frames. */
class PushedSubscription implements Operation {
  /** The id as JSON, for the frames. */
  private readonly idJson: string;

  constructor(
    readonly connection: Connection,
    readonly id: string,
    private readonly source: PushSource<object>,
    private readonly args: ExecutionArgs,
    private readonly key: string,
    private readonly hub: Hub,
    private readonly execution: SharedExecution,
    private readonly onEnd: (operation: PushedSubscription, error?: Error) => void,
  ) {
    this.idJson = JSON.stringify(id);
  }

  start(): void {
    this.source.attach(
      (event) => this.write(event),
      (error) => this.onEnd(this, error),
    );
  }

  private write(event: object): boolean {
    const { connection } = this;
    if (connection.socket.readyState !== WebSocket.OPEN) return false;
    if (connection.transport?.writableNeedDrain) {
      this.hub.awaitDrain(connection);
      return false;
    }
    this.hub.send(connection, `{"id":${this.idJson},"type":"next","payload":${this.execution.payload(event, this.key, this.args)}}`);
    return true;
  }

  flush(): void {
    this.source.flush();
  }

  stop(): void {
    void this.source.return?.()?.catch(() => undefined);
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isAsyncIterable(value: AsyncIterable<unknown> | ExecutionResult): value is AsyncIterable<unknown> {
  return typeof (value as Partial<AsyncIterable<unknown>> | undefined)?.[Symbol.asyncIterator] === 'function';
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
  /** Every open socket's connection (listeners are shared functions that look theirs up here). */
  const connections = new Map<WebSocket, Connection>();
  const wss = new WebSocketServer({
    server: httpServer,
    path: '/graphql',
    maxPayload: options.maxPayloadBytes,
    handleProtocols: (protocols) => handleProtocols(protocols),
  });
  wss.on('error', (error) => logger.warn({ err: error }, 'websocket server error'));

  const formatErrors = (errors: readonly GraphQLError[]): GraphQLFormattedError[] =>
    errors.map((error) => formatError(error.toJSON(), error));
  const formatResult = (result: ExecutionResult) =>
    result.errors ? { ...result, errors: formatErrors(result.errors) } : result;

  const close = (connection: Connection, code: number, reason: string) => connection.socket.close(code, closeReason(reason));

  const hub: Hub = {
    /** Sends, then checks the unsent bytes (a check before sending could never catch up). */
    send(connection, frame) {
      const { socket } = connection;
      if (socket.readyState !== WebSocket.OPEN) return;
      socket.send(frame);
      if (socket.bufferedAmount > options.maxBufferedBytes) hub.closeSlow(connection, `${socket.bufferedAmount} unsent bytes`);
    },
    /** 1013: release the socket's operations now, destroy it if the peer never completes the close. */
    closeSlow(connection, reason) {
      if (connection.slowClosed || connection.closed) return;
      connection.slowClosed = true;
      counters.slowConsumerCloses++;
      const { socket } = connection;
      logger.warn({ userId: connection.user?.id, reason, bufferedAmount: socket.bufferedAmount }, 'slow consumer: closing socket with 1013');
      socket.close(WsCloseCode.TryAgainLater, 'Try again later: client too slow');
      stopAll(connection);
      connection.terminateTimer = setTimeout(() => socket.terminate(), options.slowCloseGraceMs);
      connection.terminateTimer.unref();
    },
    awaitDrain(connection) {
      if (connection.drainArmed || !connection.transport) return;
      connection.drainArmed = true;
      connection.transport.once('drain', () => {
        connection.drainArmed = false;
        for (const operation of connection.operations.values()) operation?.flush();
      });
    },
  };

  const stopAll = (connection: Connection) => {
    const operations = [...connection.operations.values()];
    connection.operations.clear();
    for (const operation of operations) operation?.stop();
  };

  const sendError = (connection: Connection, id: string, errors: readonly GraphQLError[]) =>
    hub.send(connection, JSON.stringify({ id, type: MessageType.Error, payload: formatErrors(errors) }));
  const sendComplete = (connection: Connection, id: string) =>
    hub.send(connection, JSON.stringify({ id, type: MessageType.Complete }));

  /** A pushed subscription's stream ended by itself (not by `complete` or a closed socket). */
  const onPushedEnd = (operation: PushedSubscription, error?: Error) => {
    const { connection, id } = operation;
    // Stopped by `complete` or a closed socket: already removed, nothing to tell.
    if (connection.operations.get(id) !== operation) return;
    connection.operations.delete(id);
    if (error) sendError(connection, id, [new GraphQLError(error.message, { originalError: error })]);
    else sendComplete(connection, id);
  };

  const armExpiry = (connection: Connection, expiresAt: number) => {
    const remaining = expiresAt - Date.now();
    connection.expiryTimer = setTimeout(
      () => (remaining > MAX_TIMER_MS ? armExpiry(connection, expiresAt) : close(connection, CloseCode.Forbidden, 'Forbidden: token expired')),
      Math.max(0, Math.min(remaining, MAX_TIMER_MS)),
    );
    connection.expiryTimer.unref();
  };

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

  async function init(connection: Connection, payload: unknown): Promise<void> {
    if (connection.initReceived) return close(connection, CloseCode.TooManyInitialisationRequests, 'Too many initialisation requests');
    connection.initReceived = true;
    clearTimeout(connection.initTimer);
    connection.initTimer = undefined;
    const token = tokenFromConnectionParams(isObject(payload) ? payload : undefined);
    if (!token) return close(connection, CloseCode.Forbidden, 'Forbidden');
    let user: AuthUser;
    try {
      user = await verifier.verify(token);
    } catch (error) {
      logger.debug({ err: error }, 'websocket connection refused');
      return close(connection, CloseCode.Forbidden, 'Forbidden');
    }
    // The clock tolerance helps HTTP; a socket would be closed at expiry at once anyway.
    if (user.expiresAt <= Date.now()) return close(connection, CloseCode.Forbidden, 'Forbidden');
    const socketId = `${instanceId}:${++socketSeq}`;
    const acquired = await sockets.acquire(user.id, socketId);
    if (connection.closed) {
      // The peer left while the slot was being taken.
      if (acquired) await sockets.release(user.id, socketId);
      return;
    }
    if (!acquired) {
      counters.socketLimitCloses++;
      logger.info({ userId: user.id }, 'too many sockets for this user: closing with 1008');
      return close(connection, WsCloseCode.PolicyViolation, 'Too many connections for this user');
    }
    connection.slot = { userId: user.id, socketId };
    connection.user = user;
    armExpiry(connection, user.expiresAt);
    connection.acknowledged = true;
    hub.send(connection, JSON.stringify({ type: MessageType.ConnectionAck }));
  }

  /** Limits, parse (cached by query text), validation and the rate limit: errors, or what to run. */
  async function prepare(
    connection: Connection,
    payload: SubscribePayload,
  ): Promise<readonly GraphQLError[] | { document: DocumentNode; operation: OperationTypeNode | undefined }> {
    // `operations` already holds this operation's placeholder.
    if (connection.operations.size > options.maxSubscriptionsPerSocket) {
      counters.tooManySubscriptions++;
      return [new TooManySubscriptionsError(options.maxSubscriptionsPerSocket)];
    }
    // Parsed and validated here with the HTTP limits: a syntax error is an error on this
    // operation, not a closed socket.
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
      if (errors.length > 0) return errors;
      cacheDocument(payload.query, document);
    }
    const operation = getOperationAST(document, payload.operationName)?.operation;
    if (!operation) return [new GraphQLError('Unable to identify operation')];
    if (operation !== 'subscription' && options.rateLimiter && connection.user) {
      const decision = await options.rateLimiter.take(`user:${connection.user.id}`);
      if (!decision.allowed) {
        return [
          new GraphQLError(`Rate limit exceeded: retry after ${decision.retryAfterSec} s`, {
            extensions: { code: ErrorCode.RATE_LIMITED, retryAfter: decision.retryAfterSec },
          }),
        ];
      }
    }
    return { document, operation };
  }

  async function subscribe(connection: Connection, id: string, payload: SubscribePayload): Promise<void> {
    if (!connection.acknowledged) return close(connection, CloseCode.Unauthorized, 'Unauthorized');
    if (connection.operations.has(id)) return close(connection, CloseCode.SubscriberAlreadyExists, `Subscriber for ${id} already exists`);
    connection.operations.set(id, null);
    const live = () => !connection.closed && connection.operations.get(id) === null;
    const prepared = await prepare(connection, payload);
    if (!live()) return;
    if (!('document' in prepared)) {
      connection.operations.delete(id);
      return sendError(connection, id, prepared);
    }
    const context: GraphQLContext = { user: connection.user ?? null, services, connection };
    const args: ExecutionArgs = {
      schema,
      document: prepared.document,
      operationName: payload.operationName,
      variableValues: payload.variables,
      contextValue: context,
    };
    if (prepared.operation !== 'subscription') {
      const result = await execute(args);
      if (!live()) return;
      connection.operations.delete(id);
      hub.send(connection, JSON.stringify({ id, type: MessageType.Next, payload: formatResult(result) }));
      return sendComplete(connection, id);
    }
    const source = await createSourceEventStream(args);
    if (!isAsyncIterable(source)) {
      // The field refused (authorization, arguments): its errors, then complete.
      if (!live()) return;
      connection.operations.delete(id);
      hub.send(connection, JSON.stringify({ id, type: MessageType.Next, payload: formatResult(source) }));
      return sendComplete(connection, id);
    }
    if (!live()) {
      await (source as Partial<AsyncIterator<unknown>>).return?.();
      return;
    }
    if (!isPushSource<object>(source)) throw new Error(`subscription ${id}: its stream cannot be pushed`);
    // What the payload needs, without the context: that lives on in the stream only as needed.
    const selection: ExecutionArgs = { schema, document: args.document, operationName: args.operationName, variableValues: args.variableValues };
    const operation = new PushedSubscription(connection, id, source, selection, execution.selectionKey(selection), hub, execution, onPushedEnd);
    connection.operations.set(id, operation);
    operation.start();
  }

  function complete(connection: Connection, id: string): void {
    const operation = connection.operations.get(id);
    connection.operations.delete(id);
    operation?.stop();
  }

  async function handle(connection: Connection, text: string): Promise<void> {
    let message: Message;
    try {
      message = parseMessage(text);
    } catch {
      return close(connection, CloseCode.BadRequest, 'Invalid message received');
    }
    switch (message.type) {
      case MessageType.ConnectionInit:
        return init(connection, message.payload);
      case MessageType.Ping:
        return hub.send(connection, JSON.stringify(message.payload ? { type: MessageType.Pong, payload: message.payload } : { type: MessageType.Pong }));
      case MessageType.Pong:
        return;
      case MessageType.Subscribe:
        return subscribe(connection, message.id, message.payload);
      case MessageType.Complete:
        return complete(connection, message.id);
      default:
        throw new Error(`Unexpected message of type ${message.type} received`);
    }
  }

  // Listeners shared by every socket (`this` is the socket): nothing allocated per socket for them.
  function onMessage(this: WebSocket, data: RawData): void {
    const connection = connections.get(this);
    if (!connection) return;
    handle(connection, String(data)).catch((error: unknown) => {
      logger.error({ err: error }, 'websocket message handling failed');
      const message = error instanceof Error ? error.message : String(error);
      close(connection, CloseCode.InternalServerError, options.production ? 'Internal server error' : message);
    });
  }
  function onPong(this: WebSocket): void {
    const connection = connections.get(this);
    if (connection) connection.alive = true;
  }
  // Protocol errors (invalid UTF-8 1007, oversize 1009, bad frames 1002) are closed by ws with the
  // right code before it emits 'error'; ws requires a listener, or the error would crash the process.
  function onError(error: Error): void {
    logger.debug({ err: error }, 'websocket protocol error');
  }
  function onClose(this: WebSocket): void {
    const connection = connections.get(this);
    if (!connection) return;
    connections.delete(this);
    connection.closed = true;
    clearTimeout(connection.initTimer);
    clearTimeout(connection.expiryTimer);
    clearTimeout(connection.terminateTimer);
    stopAll(connection);
    const slot = connection.slot;
    connection.slot = undefined;
    if (slot) {
      sockets.release(slot.userId, slot.socketId).catch((error: unknown) => logger.debug({ err: error }, 'socket slot release failed'));
    }
  }

  wss.on('connection', (socket) => {
    socket.on('error', onError);
    if (socket.protocol !== GRAPHQL_TRANSPORT_WS_PROTOCOL) {
      socket.close(CloseCode.SubprotocolNotAcceptable, 'Subprotocol not acceptable');
      return;
    }
    const connection = new Connection(socket, hub);
    connections.set(socket, connection);
    socket.on('message', onMessage);
    socket.on('pong', onPong);
    socket.on('close', onClose);
    if (options.connectionInitTimeoutMs > 0) {
      connection.initTimer = setTimeout(() => {
        if (!connection.initReceived) close(connection, CloseCode.ConnectionInitialisationTimeout, 'Connection initialisation timeout');
      }, options.connectionInitTimeoutMs);
      connection.initTimer.unref();
    }
  });

  // One keep-alive sweep for every socket: a peer that did not answer the previous ping is gone.
  const keepAlive =
    options.keepAliveMs > 0
      ? setInterval(() => {
          for (const [socket, connection] of connections) {
            if (socket.readyState !== WebSocket.OPEN) continue;
            if (!connection.alive) {
              socket.terminate();
              continue;
            }
            connection.alive = false;
            socket.ping();
          }
        }, options.keepAliveMs)
      : undefined;
  keepAlive?.unref();

  return {
    socketCount: () => wss.clients.size,
    counters,
    async close(timeoutMs) {
      clearInterval(keepAlive);
      for (const client of wss.clients) client.close(1001, 'Going away');
      const timer = setTimeout(() => {
        for (const client of wss.clients) client.terminate();
      }, timeoutMs);
      try {
        await new Promise<void>((resolve, reject) => wss.close((error) => (error ? reject(error) : resolve())));
      } finally {
        clearTimeout(timer);
      }
    },
  };
}

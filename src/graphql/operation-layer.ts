/**
 * The operation layer every transport shares (docs/architecture.md#layers): a transport
 * authenticates a connection into a `Session`, hands it operations (`start`, `stop`) and frames
 * what comes back through an `OperationSink`; everything else happens here, once for all
 * transports:
 *
 * - authentication of the connection's token and the per-user connection cap across instances
 *   (`WS_MAX_SOCKETS_PER_USER`, through the `ConnectionRegistry` port), the token's expiry;
 * - per operation: the operation cap (`TOO_MANY_SUBSCRIPTIONS`), NUL refusal, parse and
 *   validation with the shared limits (./documents.ts), the per-user rate limit for queries and
 *   mutations, the context, execution, and for subscriptions the pushed delivery with one
 *   execution per event and selection (./push-delivery.ts);
 * - error formatting (./format-error.ts) and the counters behind /metrics.
 *
 * Operations are tracked by identity: each `start` creates its own state object, and every step
 * that resumes after an `await` checks that the map still holds *that* object. A client that
 * completes an operation and subscribes again with the same id in the same write therefore gets
 * the new operation answered and nothing more of the cancelled one (a shared placeholder would
 * let the cancelled one take the new one's place).
 */
import {
  createSourceEventStream,
  execute,
  GraphQLError,
  type ExecutionArgs,
  type ExecutionResult,
  type GraphQLFormattedError,
  type GraphQLSchema,
} from 'graphql';
import type { Logger } from 'pino';
import type { AuthUser, ConnectionControl, GraphQLContext, Services } from '../contracts/context';
import { BadUserInputError, ErrorCode, TooManySubscriptionsError } from '../contracts/errors';
import type { GatewayEvent } from '../contracts/events';
import type { ConnectionRegistry, RateLimiter } from '../contracts/ports';
import { DocumentCache, type DocumentLimits } from './documents';
import type { ErrorFormatter } from './format-error';
import { containsNul, NUL_MESSAGE } from './nul-guard';
import { isPushSource, SharedExecution, type PushSource } from './push-delivery';

/** setTimeout's ceiling (~24.8 days); tokens living longer are re-armed. */
const MAX_TIMER_MS = 2_147_483_647;

/** What a client asks to run: the GraphQL-over-HTTP request parameters, whatever the transport. */
export interface OperationRequest {
  readonly query: string;
  readonly variables?: Readonly<Record<string, unknown>> | null;
  readonly operationName?: string | null;
  readonly extensions?: Readonly<Record<string, unknown>> | null;
}

/** A formatted result, as it goes on the wire. */
export interface WireResult {
  readonly data?: unknown;
  readonly errors?: readonly GraphQLFormattedError[];
  readonly extensions?: unknown;
}

/** What a transport sees of an operation: its id (and the id as JSON text, for frames). */
export interface OperationRef {
  readonly id: string;
  readonly idJson: string;
}

/**
 * How a transport frames operations' output (one object per connection: a socket carries many
 * operations, a stream one). The layer calls, per operation and in order: at most one of `error`
 * (refused before execution, or failed: nothing else follows) or `result` (a single result) or
 * any number of `next`; then `complete`, unless `error` was called or the client stopped it.
 */
export interface OperationSink {
  /** False while the connection cannot take a frame now: the event waits in its bounded buffer until `Session.flush`. */
  ready(operation: OperationRef): boolean;
  /** One pushed event: `payload` is the JSON text of its `ExecutionResult`, shared by every subscriber with the same selection. */
  next(operation: OperationRef, payload: string, event: GatewayEvent): void;
  /** A single result (a query or mutation, or a subscription its field refused). */
  result(operation: OperationRef, result: WireResult): void;
  /** The operation was refused or failed; no `complete` follows. */
  error(operation: OperationRef, errors: readonly GraphQLFormattedError[]): void;
  complete(operation: OperationRef): void;
}

/** What a session needs from its transport. */
export interface SessionTransport {
  /** The token expired while the connection was open (WebSocket: close 4403). */
  expired(): void;
  /** The client cannot keep up (WebSocket: close 1013); the session has already stopped its operations. */
  slow(reason: string): void;
}

export type SessionRefusal =
  /** No token, a token that fails verification, or one already expired. */
  | { readonly refused: 'forbidden'; readonly reason: string }
  /** The user already holds the maximum of connections. */
  | { readonly refused: 'too-many-connections'; readonly reason: string };

export interface OperationCounters {
  /** Connections ended because they fell behind (unsent bytes or event-buffer overflow). */
  slowConsumerCloses: number;
  /** Connections refused because their user had too many. */
  socketLimitCloses: number;
  /** Operations refused with TOO_MANY_SUBSCRIPTIONS. */
  tooManySubscriptions: number;
  /** Subscription payloads executed: one per event and distinct selection, however many receive it. */
  payloadExecutions: number;
}

export interface OperationLayerOptions extends DocumentLimits {
  /** `WS_MAX_SUBSCRIPTIONS_PER_SOCKET`: live operations per connection. */
  readonly maxOperationsPerSession: number;
}

export interface TokenCheck {
  verify(token: string): Promise<AuthUser>;
}

export class OperationLayer {
  readonly counters: OperationCounters = { slowConsumerCloses: 0, socketLimitCloses: 0, tooManySubscriptions: 0, payloadExecutions: 0 };
  readonly execution: SharedExecution;
  private readonly documents: DocumentCache;
  private connectionSeq = 0;

  constructor(
    readonly schema: GraphQLSchema,
    readonly services: Services,
    private readonly deps: {
      readonly verifier: TokenCheck;
      readonly connections: ConnectionRegistry;
      readonly rateLimiter?: RateLimiter;
      readonly formatError: ErrorFormatter;
      readonly logger: Logger;
      /** Unique per instance: names this instance's connections in the shared registry. */
      readonly instanceId: string;
    },
    readonly options: OperationLayerOptions,
  ) {
    this.documents = new DocumentCache(schema, options);
    this.execution = new SharedExecution(schema, deps.formatError, () => this.counters.payloadExecutions++);
  }

  /** The context resolvers see, on every transport. */
  context(user: AuthUser | null, connection?: ConnectionControl): GraphQLContext {
    return connection ? { user, services: this.services, connection } : { user, services: this.services };
  }

  formatErrors(errors: readonly GraphQLError[]): GraphQLFormattedError[] {
    return errors.map((error) => this.deps.formatError(error.toJSON(), error));
  }

  formatResult(result: ExecutionResult): WireResult {
    return result.errors ? { ...result, errors: this.formatErrors(result.errors) } : result;
  }

  /**
   * Authenticates a connection and takes its slot in the per-user count. The caller ends the
   * session when its connection closes (also when it closed while this was pending).
   */
  async openSession(token: string | undefined, transport: SessionTransport): Promise<Session | SessionRefusal> {
    if (!token) return { refused: 'forbidden', reason: 'Forbidden' };
    let user: AuthUser;
    try {
      user = await this.deps.verifier.verify(token);
    } catch (error) {
      this.deps.logger.debug({ err: error }, 'connection refused');
      return { refused: 'forbidden', reason: 'Forbidden' };
    }
    // The clock tolerance helps HTTP; a connection would be ended at expiry at once anyway.
    if (user.expiresAt <= Date.now()) return { refused: 'forbidden', reason: 'Forbidden' };
    const connectionId = `${this.deps.instanceId}:${++this.connectionSeq}`;
    if (!(await this.deps.connections.acquire(user.id, connectionId))) {
      this.counters.socketLimitCloses++;
      this.deps.logger.info({ userId: user.id }, 'too many connections for this user');
      return { refused: 'too-many-connections', reason: 'Too many connections for this user' };
    }
    return new Session(this, user, connectionId, transport);
  }

  /** @internal Session's way to the shared pieces. */
  prepare(request: OperationRequest): ReturnType<DocumentCache['prepare']> {
    if (typeof request.query !== 'string' || containsNul(request.query) || containsNul(request.variables)) {
      return [new GraphQLError(NUL_MESSAGE, { extensions: { code: ErrorCode.BAD_USER_INPUT } })];
    }
    return this.documents.prepare(request.query, request.operationName);
  }

  /** @internal The per-user budget queries and mutations spend, on every transport alike. */
  async rateLimited(user: AuthUser): Promise<GraphQLError | undefined> {
    if (!this.deps.rateLimiter) return undefined;
    const decision = await this.deps.rateLimiter.take(`user:${user.id}`);
    if (decision.allowed) return undefined;
    return new GraphQLError(`Rate limit exceeded: retry after ${decision.retryAfterSec} s`, {
      extensions: { code: ErrorCode.RATE_LIMITED, retryAfter: decision.retryAfterSec },
    });
  }

  /** @internal */
  release(userId: string, connectionId: string): void {
    this.deps.connections
      .release(userId, connectionId)
      .catch((error: unknown) => this.deps.logger.debug({ err: error }, 'connection slot release failed'));
  }

  /** @internal */
  get logger(): Logger {
    return this.deps.logger;
  }
}

/**
 * One operation while it lives in its session; its identity is what `Session.live` compares. A
 * class with methods rather than closures: there is one per live subscription (heap per socket).
 */
class Operation implements OperationRef {
  readonly idJson: string;
  /** Set once a subscription's stream is attached. */
  source: PushSource<object> | undefined;
  private selection: ExecutionArgs | undefined;
  private key = '';

  constructor(
    readonly id: string,
    private readonly session: Session,
    private readonly layer: OperationLayer,
    readonly sink: OperationSink,
  ) {
    this.idJson = JSON.stringify(id);
  }

  attach(source: PushSource<object>, selection: ExecutionArgs, key: string): void {
    this.source = source;
    this.selection = selection;
    this.key = key;
    source.attach(
      (event) => this.write(event),
      (error) => this.session.ended(this, error),
    );
  }

  private write(event: object): boolean {
    const { sink } = this;
    if (!sink.ready(this)) return false;
    sink.next(this, this.layer.execution.payload(event, this.key, this.selection as ExecutionArgs), event as GatewayEvent);
    return true;
  }

  stop(): void {
    void this.source?.return?.()?.catch(() => undefined);
  }
}

/**
 * One authenticated connection (a socket, a multipart or SSE stream): its user, its live
 * operations by id, its expiry timer and its slot in the per-user count.
 */
export class Session implements ConnectionControl {
  private readonly operations = new Map<string, Operation>();
  private closed = false;
  private slowEnded = false;
  private expiryTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly layer: OperationLayer,
    readonly user: AuthUser,
    private readonly connectionId: string,
    private readonly transport: SessionTransport,
  ) {
    this.armExpiry(user.expiresAt);
  }

  /** Operations running now. */
  get size(): number {
    return this.operations.size;
  }

  has(id: string): boolean {
    return this.operations.has(id);
  }

  /**
   * Runs one operation; resolves once it is set up (a subscription attached, a query answered).
   * The transport checks `has(id)` first: a duplicate id is a protocol matter (4409 on a socket).
   */
  async start(id: string, request: OperationRequest, sink: OperationSink): Promise<void> {
    const { layer } = this;
    const operation = new Operation(id, this, layer, sink);
    this.operations.set(id, operation);
    const refuse = (errors: readonly GraphQLError[]) => {
      if (!this.live(operation)) return;
      this.operations.delete(id);
      sink.error(operation, layer.formatErrors(errors));
    };
    const answer = (result: ExecutionResult) => {
      if (!this.live(operation)) return;
      this.operations.delete(id);
      sink.result(operation, layer.formatResult(result));
      sink.complete(operation);
    };

    if (this.operations.size > layer.options.maxOperationsPerSession) {
      layer.counters.tooManySubscriptions++;
      return refuse([new TooManySubscriptionsError(layer.options.maxOperationsPerSession)]);
    }
    if (request.variables != null && (typeof request.variables !== 'object' || Array.isArray(request.variables))) {
      return refuse([new BadUserInputError('variables must be an object')]);
    }
    const prepared = layer.prepare(request);
    if (!('document' in prepared)) return refuse(prepared);
    if (prepared.operation !== 'subscription') {
      const limited = await layer.rateLimited(this.user);
      if (limited) return refuse([limited]);
      if (!this.live(operation)) return;
    }
    const args: ExecutionArgs = {
      schema: layer.schema,
      document: prepared.document,
      operationName: request.operationName,
      variableValues: request.variables,
      contextValue: layer.context(this.user, this),
    };
    if (prepared.operation !== 'subscription') return answer(await execute(args));

    const source = await createSourceEventStream(args);
    if (!isAsyncIterable(source)) return answer(source); // the field refused: its errors, then complete
    if (!this.live(operation)) {
      await (source as Partial<AsyncIterator<unknown>>).return?.();
      return;
    }
    if (!isPushSource<object>(source)) throw new Error(`subscription ${id}: its stream cannot be pushed`);
    // What the payload needs, without the context: that lives on in the stream only as needed.
    const selection: ExecutionArgs = {
      schema: layer.schema,
      document: args.document,
      operationName: args.operationName,
      variableValues: args.variableValues,
    };
    operation.attach(source, selection, layer.execution.selectionKey(selection));
  }

  /** @internal A subscription's stream ended by itself (not by `stop` or the connection). */
  ended(operation: Operation, error?: Error): void {
    // Stopped by the client or the connection: already removed, nothing to tell.
    if (!this.live(operation)) return;
    this.operations.delete(operation.id);
    if (error) operation.sink.error(operation, this.layer.formatErrors([new GraphQLError(error.message, { originalError: error })]));
    else operation.sink.complete(operation);
  }

  private live(operation: Operation): boolean {
    return !this.closed && this.operations.get(operation.id) === operation;
  }

  /** The client stopped an operation: released, and nothing more is sent for it. */
  stop(id: string): void {
    const operation = this.operations.get(id);
    this.operations.delete(id);
    operation?.stop();
  }

  /** The connection can take frames again: offer what waited. */
  flush(): void {
    for (const operation of this.operations.values()) operation.source?.flush();
  }

  /** `ConnectionControl`: a subscription's buffer overflowed. */
  slowConsumer(reason: string): void {
    if (this.slowEnded || this.closed) return;
    this.slowEnded = true;
    this.layer.counters.slowConsumerCloses++;
    this.layer.logger.warn({ userId: this.user.id, reason }, 'slow consumer: ending its connection');
    this.stopAll();
    this.transport.slow(reason);
  }

  /** The connection is gone: every operation stopped, the slot released, timers cleared. Idempotent. */
  end(): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.expiryTimer);
    this.stopAll();
    this.layer.release(this.user.id, this.connectionId);
  }

  private stopAll(): void {
    const operations = [...this.operations.values()];
    this.operations.clear();
    for (const operation of operations) operation.stop();
  }

  private armExpiry(expiresAt: number): void {
    const remaining = expiresAt - Date.now();
    this.expiryTimer = setTimeout(
      () => (remaining > MAX_TIMER_MS ? this.armExpiry(expiresAt) : this.transport.expired()),
      Math.max(0, Math.min(remaining, MAX_TIMER_MS)),
    );
    this.expiryTimer.unref();
  }
}

function isAsyncIterable(value: AsyncIterable<unknown> | ExecutionResult): value is AsyncIterable<unknown> {
  return typeof (value as Partial<AsyncIterable<unknown>> | undefined)?.[Symbol.asyncIterator] === 'function';
}

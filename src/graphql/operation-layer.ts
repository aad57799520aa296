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
 * - error formatting (./format-error.ts) and the counters behind /metrics, by transport;
 * - in-band token renewal (`Session.renew`, the `renewSession` mutation) and revocation: when the
 *   `RevocationStore` reports a revocation (from any instance), every local session of that user
 *   whose token predates it ends through its transport (4403 on a socket, an error on a stream).
 *
 * Operations are tracked by identity: each `start` creates its own state object, and every step
 * that resumes after an `await` checks that the map still holds *that* object. A client that
 * completes an operation and subscribes again with the same id in the same write therefore gets
 * the new operation answered and nothing more of the cancelled one (a shared placeholder would
 * let the cancelled one take the new one's place).
 */
import { GraphQLError, type ExecutionArgs, type ExecutionResult, type GraphQLFormattedError, type GraphQLSchema } from 'graphql';
import type { Logger } from 'pino';
import { issuedBeforeRevocation } from '../auth/revocation';
import type { AuthUser, ConnectionControl, GraphQLContext, Services, TransportName } from '../contracts/context';
import { ErrorCode } from '../contracts/errors';
import type { GatewayEvent } from '../contracts/events';
import type { ConnectionRegistry, RateLimiter, RevocationStore } from '../contracts/ports';
import { Deadlines } from '../lib/deadlines';
import { DocumentCache, type DocumentLimits } from './documents';
import type { ErrorFormatter } from './format-error';
import { containsNul, NUL_MESSAGE } from './nul-guard';
import { SharedExecution } from './push-delivery';
import { Session } from './session';

export { Session };

/** What a client asks to run: the GraphQL-over-HTTP request parameters, whatever the transport. */
export interface OperationRequest {
  readonly query: string;
  readonly variables?: Readonly<Record<string, unknown>> | null;
  readonly operationName?: string | null;
  readonly extensions?: Readonly<Record<string, unknown>> | null;
  /**
   * Resume after this eventId, as the subscription field's `after` argument would (SSE's
   * `Last-Event-ID`); it replaces any `after` the document gives. Ignored by fields without one.
   */
  readonly resumeAfter?: string;
}

/** A formatted result, as it goes on the wire. */
export interface WireResult {
  readonly data?: unknown;
  readonly errors?: readonly GraphQLFormattedError[];
  readonly extensions?: unknown;
}

/**
 * What a pushed subscription's payload depends on (`SharedExecution.selectionKey`), one object per
 * distinct key shared by every operation with it: the arguments the payload is executed with.
 */
export interface Selection {
  readonly key: string;
  readonly args: ExecutionArgs;
}

/** Distinct selections shared as one object each (a cap, not an LRU: clients send a few documents). */
const MAX_SHARED_SELECTIONS = 10_000;

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
  /** The user's sessions were revoked (WebSocket: close 4403 with the reason); the session has already ended. */
  revoked(reason: string): void;
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
  /** Of those, the ones graphql-jit's compiled form produced (the rest: graphql-js; docs/decisions/0602). */
  payloadsCompiled: number;
}

/** Per transport: connections open now, and how many ended for each reason the layer decides. */
export interface TransportCounters {
  open: number;
  opened: number;
  slowConsumer: number;
  expired: number;
  revoked: number;
}

export interface SessionCounters {
  /** Revocations this instance heard (its own and other instances'). */
  revocations: number;
  /** Tokens renewed in band, and renewals refused (FORBIDDEN). */
  renewals: number;
  renewalsRefused: number;
  readonly transports: Record<TransportName, TransportCounters>;
}

const transportCounters = (): TransportCounters => ({ open: 0, opened: 0, slowConsumer: 0, expired: 0, revoked: 0 });

export interface OperationLayerOptions extends DocumentLimits {
  /** `WS_MAX_SUBSCRIPTIONS_PER_SOCKET`: live operations per connection. */
  readonly maxOperationsPerSession: number;
}

export interface TokenCheck {
  verify(token: string): Promise<AuthUser>;
}

export class OperationLayer {
  readonly counters: OperationCounters = {
    slowConsumerCloses: 0,
    socketLimitCloses: 0,
    tooManySubscriptions: 0,
    payloadExecutions: 0,
    payloadsCompiled: 0,
  };
  readonly sessionCounters: SessionCounters = {
    revocations: 0,
    renewals: 0,
    renewalsRefused: 0,
    transports: { ws: transportCounters(), multipart: transportCounters(), sse: transportCounters() },
  };
  readonly execution: SharedExecution;
  private readonly documents: DocumentCache;
  private connectionSeq = 0;
  /**
   * This instance's open sessions by user, for revocation: the session itself while a user has
   * one (most do; a Set each would cost more than the session), a Set from the second.
   */
  private readonly sessions = new Map<string, Session | Set<Session>>();
  /** @internal Every session's token expiry, on one timer. */
  readonly expiries = new Deadlines<Session>((session) => session.expire());
  private readonly selections = new Map<string, Selection>();

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
      /** Revocations from every instance; `verifier` must already refuse revoked tokens (auth/revocation.ts). */
      readonly revocations?: RevocationStore;
    },
    readonly options: OperationLayerOptions,
  ) {
    this.documents = new DocumentCache(schema, options);
    this.execution = new SharedExecution(schema, deps.formatError, (compiled) => {
      this.counters.payloadExecutions++;
      if (compiled) this.counters.payloadsCompiled++;
    });
    deps.revocations?.onRevoked((userId, revokedAt) => this.revokeLocal(userId, revokedAt));
  }

  /** Ends this instance's sessions of `userId` whose token predates the revocation. */
  private revokeLocal(userId: string, revokedAt: number): void {
    this.sessionCounters.revocations++;
    const entry = this.sessions.get(userId);
    const all = entry === undefined ? [] : entry instanceof Set ? [...entry] : [entry];
    const mine = all.filter((session) => issuedBeforeRevocation(session.user, revokedAt));
    if (mine.length > 0) this.deps.logger.info({ userId, sessions: mine.length }, 'sessions revoked: ending connections');
    for (const session of mine) session.revoke();
  }

  /** @internal The verifier sessions renew with. */
  verify(token: string): Promise<AuthUser> {
    return this.deps.verifier.verify(token);
  }

  /** @internal */
  opened(session: Session): void {
    const userId = session.user.id;
    const mine = this.sessions.get(userId);
    if (mine === undefined) this.sessions.set(userId, session);
    else if (mine instanceof Set) mine.add(session);
    else this.sessions.set(userId, new Set([mine, session]));
    const counters = this.sessionCounters.transports[session.transport];
    counters.open++;
    counters.opened++;
  }

  /** @internal */
  closed(session: Session): void {
    const userId = session.user.id;
    const mine = this.sessions.get(userId);
    if (mine === session) this.sessions.delete(userId);
    else if (mine instanceof Set) {
      mine.delete(session);
      if (mine.size === 1) this.sessions.set(userId, mine.values().next().value as Session);
      else if (mine.size === 0) this.sessions.delete(userId);
    }
    this.sessionCounters.transports[session.transport].open--;
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
  async openSession(token: string | undefined, transport: SessionTransport, name: TransportName = 'ws'): Promise<Session | SessionRefusal> {
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
    const seq = ++this.connectionSeq;
    if (!(await this.deps.connections.acquire(user.id, this.connectionId(seq)))) {
      this.counters.socketLimitCloses++;
      this.deps.logger.info({ userId: user.id }, 'too many connections for this user');
      return { refused: 'too-many-connections', reason: 'Too many connections for this user' };
    }
    const session = new Session(this, user, seq, transport, name);
    this.opened(session);
    return session;
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

  /**
   * @internal The shared `Selection` of a subscription's payload arguments: operations that differ
   * only in what does not change the payload (`after`, `userId`, `deviceId`) share one object.
   */
  selection(args: ExecutionArgs): Selection {
    const key = this.execution.selectionKey(args);
    const shared = this.selections.get(key);
    if (shared !== undefined) return shared;
    const selection: Selection = { key, args };
    if (this.selections.size < MAX_SHARED_SELECTIONS) this.selections.set(key, selection);
    return selection;
  }

  /** @internal A connection's id in the shared registry: built when needed, not kept per session. */
  connectionId(seq: number): string {
    return `${this.deps.instanceId}:${seq}`;
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

/**
 * The seams between the bridge and the outside technologies. `infra/` implements them (RabbitMQ
 * or in-process bus; Redis or in-process pub/sub); `app.ts` picks one of each.
 */
import type { EventStream } from '../lib/event-queue';
import type { GatewayEvent, IncomingMessage } from './events';

/** What the bus does with a message after the handler looked at it. */
export type Disposition =
  | { readonly action: 'ack' }
  | { readonly action: 'dead-letter'; readonly reason: string }
  /** Put it back (a transient failure such as pub/sub being down). */
  | { readonly action: 'requeue'; readonly reason: string };

export type MessageHandler = (message: IncomingMessage) => Promise<Disposition>;

/**
 * Messages in delivery order, handled as one batch: their read-model writes share a transaction
 * and their fan-out publishes a round trip. One disposition per message, in order. From the first
 * `requeue` on, every later message is `requeue` too (nothing of them was published) unless it
 * was settled without publishing anything (dead-lettered, ignored): the bus settles those at once
 * and retries the requeued ones, in their order, ahead of anything newer.
 */
export type MessageRunHandler = (messages: readonly IncomingMessage[]) => Promise<Disposition[]>;

/** A run handler over a handler of single messages: one after another, up to the first to retry. */
export function oneByOne(handler: MessageHandler): MessageRunHandler {
  return async (messages) => {
    const out: Disposition[] = [];
    for (const message of messages) {
      const disposition = await handler(message);
      out.push(disposition);
      if (disposition.action === 'requeue') break;
    }
    return out;
  };
}

export interface OutgoingMessage {
  readonly routingKey: string;
  readonly body: unknown;
  readonly messageId: string;
  /** Epoch milliseconds. */
  readonly timestamp: number;
}

export interface DependencyStatus {
  readonly up: boolean;
  readonly detail?: string;
}

/** The platform's event bus: RabbitMQ, or the in-process stand-in. */
export interface EventBus {
  /** Connects and declares the topology; does not consume yet. */
  connect(): Promise<void>;
  /**
   * Starts delivering messages bound to the gateway's queue to `handler`, or, where the bus can
   * hand several at once (what one user has waiting), to `run`.
   */
  consume(handler: MessageHandler, run?: MessageRunHandler): Promise<void>;
  /** Publishes durably; resolves once the broker confirmed it. */
  publish(message: OutgoingMessage): Promise<void>;
  status(): DependencyStatus;
  /** Stops consuming, waits for in-flight handlers, closes. */
  close(): Promise<void>;
}

/**
 * Puts raw bytes on the in-process bus exactly as the broker would deliver them, so they go
 * through the same bridge, validation and dead-lettering (`POST /dev/events`, the CLI, tests).
 * Only the in-process bus has it: with RabbitMQ, messages come from the platform.
 */
export interface RawMessageInjector {
  /** Throws once the bus is closed; a routing key no binding takes is dropped, as RabbitMQ would. */
  publishRaw(routingKey: string, body: Buffer, properties?: { messageId?: string; timestamp?: number }): void;
}

/**
 * The gateway's own tables, kept up to date from the events (`domains/read-model`). The bridge
 * asks it for the owner of events that name only a device, and applies every event to it before
 * publishing, so a query made after a subscriber saw an event returns what the event announced.
 */
export interface ReadModel {
  /** The owner of a device, or undefined when the read model does not know it. */
  ownerOfDevice(deviceId: string): Promise<string | undefined>;
  /**
   * Applies an event, idempotently by `eventId`; older-than-current state is ignored. Resolves
   * to the event carrying its entity as the read model holds it once the event's batch is
   * written (contracts/entities.ts): never older than what an earlier event carried. Throwing requeues.
   */
  apply(event: GatewayEvent): Promise<GatewayEvent>;
  /**
   * Users with an app currently installed (by app id or package name), for catalogue events that
   * name no user (`app.updated`). At most `limit`, ordered by user id, after `afterUserId` (paging).
   */
  usersWithApp?(app: { readonly appId?: string; readonly packageName?: string }, limit: number, afterUserId?: string): Promise<string[]>;
}

/** A statement in PostgreSQL's own form: `$1`, `$2`, ... placeholders and their values (a `Prisma.Sql`'s `text` and `values`). */
export interface SqlStatement {
  readonly text: string;
  readonly values: readonly unknown[];
}

/** Statements on one connection; inside `SqlExecutor.transaction`, in its transaction. */
export interface SqlSession {
  /**
   * The rows, as objects by column name, with the values `$queryRaw` gives for the same types:
   * timestamptz/timestamp as Date, json/jsonb parsed, int2/int4/float4/float8 as numbers, bool,
   * text (int8 and numeric come as strings, where Prisma gives BigInt and Decimal: cast them in
   * SQL). Rejects with `SqlUnavailableError` when the database cannot be used at all, with the
   * database's own error (its SQLSTATE in `code`) when the statement fails.
   *
   * `commit` (inside `transaction` only): this is the transaction's last statement; the executor
   * may send COMMIT with it, in the same round trip (PostgreSQL), and refuses any statement after
   * it. When it rejects, nothing of the transaction is committed.
   */
  query<R = Record<string, unknown>>(statement: SqlStatement, options?: { readonly commit?: boolean }): Promise<R[]>;
}

/**
 * Raw SQL straight on the database's driver (`pg` pool, or PGlite), for the hot paths that
 * cannot afford Prisma's interactive transaction (docs/decisions/0600). `query` runs in
 * autocommit on any pooled connection.
 */
export interface SqlExecutor {
  /** One statement in autocommit (the rows and errors as `SqlSession.query`'s). */
  query<R = Record<string, unknown>>(statement: SqlStatement): Promise<R[]>;
  /**
   * BEGIN, `work`, COMMIT on one connection; ROLLBACK when `work` throws (then rejects with what
   * it threw). Resolves once committed. On PostgreSQL every statement is bounded in time, and so
   * is a transaction left idle (a session left 20 s inside one is ended by the server).
   */
  transaction<T>(work: (session: SqlSession) => Promise<T>): Promise<T>;
}

/**
 * The database cannot be used at all (unreachable, connection lost or refused, shutting down,
 * no pooled connection in time), as opposed to a statement that failed: the read model then
 * requeues a whole batch at once. `cause` is the driver's error.
 */
export class SqlUnavailableError extends Error {
  constructor(message: string, options: { cause: unknown }) {
    super(message, options);
    this.name = 'SqlUnavailableError';
  }
}

/** Where a resumed subscription picks up (a subscription's `after` argument). */
export interface ResumeFrom {
  /** The `eventId` the client last received. */
  readonly after: string;
  /** Whose retained events to replay: one user's, or null for every user's (administrators). */
  readonly userId: string | null;
  /**
   * Which retained events this subscription takes (its family, `deviceId`): the others are
   * skipped before they reach its bounded buffer, so only what it would have received counts.
   */
  readonly accept: (event: GatewayEvent) => boolean;
  /**
   * The log to read instead of a user's (`Topics.notificationLog`, `Topics.systemLog`): events of
   * an audience rather than a user. `userId` then only says nothing is filtered by user.
   */
  readonly log?: string;
}

/** Where a published event is retained besides being delivered live. */
export interface PublishOptions {
  /**
   * The log to append to instead of the event's user's (and not the every-user log): for events
   * of an audience, not a user. Without it, an event without a `userId` is not retained.
   */
  readonly log?: string;
}

/** One event of `EventPubSub.publishMany`. */
export interface PublishItem {
  readonly topic: string;
  readonly event: GatewayEvent;
  readonly options?: PublishOptions;
}

/** Fan-out to every gateway instance: Redis pub/sub, or the in-process stand-in. */
export interface EventPubSub {
  /**
   * Publishes `event` on `topic` and, when the adapter retains events, appends it to its user's
   * log and the every-user log in the same step, so the logs' order is the live order.
   */
  publish(topic: string, event: GatewayEvent, options?: PublishOptions): Promise<void>;
  /**
   * Publishes several events, in order, each exactly as `publish` would (atomic per event between
   * the live publish and its logs), in as few round trips as the adapter can (one on one Redis).
   * Rejects when any of them failed; the events published before the first failure may have gone
   * out, those after it have not (the caller retries from the first failed one, in order). On a
   * Redis Cluster that holds per user (per hash tag): other users' events of the batch may have
   * gone out either side of the failure, and their repeat is a duplicate clients drop by `eventId`.
   */
  publishMany(items: readonly PublishItem[]): Promise<void>;
  /**
   * Events on `topic` (a glob pattern when `pattern`). Resolves once the subscription is active,
   * so nothing published after it resolves is missed; `return()` releases it. Each stream is
   * bounded and coalesces state-like events (the adapter's `QueueOptions`, lib/event-queue.ts).
   * With `resume`, the stream first yields the retained events that followed `resume.after`, in
   * order, then the live ones, none twice; it rejects with `HistoryExpiredError` when that event
   * is not retained.
   */
  subscribe(topic: string, options?: { pattern?: boolean; resume?: ResumeFrom }): Promise<EventStream<GatewayEvent>>;
  status(): DependencyStatus;
  close(): Promise<void>;
}

/**
 * Open connections per user (`WS_MAX_SOCKETS_PER_USER`), counted across every instance and every
 * transport: Redis with leases, or in memory on one instance.
 */
export interface ConnectionRegistry {
  /** Takes a slot for `connectionId`; false when `userId` already holds the maximum. */
  acquire(userId: string, connectionId: string): Promise<boolean>;
  release(userId: string, connectionId: string): Promise<void>;
  close(): Promise<void>;
}

export type RateDecision = { readonly allowed: true } | { readonly allowed: false; readonly retryAfterSec: number };

/** A token bucket per caller key (`user:<id>`, `addr:<ip>`), shared by instances with Redis. */
export interface RateLimiter {
  take(key: string): Promise<RateDecision>;
  close(): Promise<void>;
}

/**
 * Revoked sessions per user (docs/transports.md#revocation), shared by every instance: Redis (a
 * key per user with its own expiry, and a pub/sub channel so every instance hears of it within
 * the second), or in memory on one instance.
 */
export interface RevocationStore {
  /** Records a revocation of `userId`'s sessions now; every instance's listeners hear it. Resolves with its time (epoch ms). */
  revoke(userId: string): Promise<number>;
  /** The latest revocation of `userId` still retained (epoch ms), or undefined. */
  revokedAt(userId: string): Promise<number | undefined>;
  /** Called on every instance, for each revocation (this instance's and the others'). */
  onRevoked(listener: (userId: string, revokedAt: number) => void): void;
  close(): Promise<void>;
}

/**
 * The durable copy of the retained event log (PostgreSQL, written in the read model's
 * transaction), read when the pub/sub's own log (Redis memory) no longer holds a client's `after`.
 */
export interface DurableEventLog {
  /**
   * The events that followed `after` in `userId`'s log (null: every user's), oldest first;
   * undefined when `after` is not retained there (past the count or age bound, unknown, or
   * another user's). Rejects when the store cannot be read: the caller then cannot prove
   * continuity and answers `HISTORY_UNAVAILABLE`.
   */
  readAfter(userId: string | null, after: string): Promise<GatewayEvent[] | undefined>;
}

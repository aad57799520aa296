/**
 * Every `extensions.code` a client can receive, in one place (docs/api.md#error-codes), and the
 * client-facing error classes that carry them. Anything thrown that is not one of these (or
 * another GraphQLError with one of these codes) is unexpected and is masked by the error
 * formatter in production (src/graphql/format-error.ts).
 */
import { GraphQLError, type GraphQLErrorExtensions } from 'graphql';

/** The codes clients may branch on. Never rename one. */
export const ErrorCode = {
  UNAUTHENTICATED: 'UNAUTHENTICATED',
  FORBIDDEN: 'FORBIDDEN',
  BAD_USER_INPUT: 'BAD_USER_INPUT',
  NOT_FOUND: 'NOT_FOUND',
  TOO_MANY_SUBSCRIPTIONS: 'TOO_MANY_SUBSCRIPTIONS',
  RATE_LIMITED: 'RATE_LIMITED',
  HISTORY_EXPIRED: 'HISTORY_EXPIRED',
  HISTORY_UNAVAILABLE: 'HISTORY_UNAVAILABLE',
  INTERNAL_SERVER_ERROR: 'INTERNAL_SERVER_ERROR',
  /** The document does not parse (graphql-js / Apollo's code). */
  GRAPHQL_PARSE_FAILED: 'GRAPHQL_PARSE_FAILED',
  /** The document does not validate against the schema or the limits (depth, complexity). */
  GRAPHQL_VALIDATION_FAILED: 'GRAPHQL_VALIDATION_FAILED',
  /** The HTTP request itself is malformed (body not JSON, missing query). */
  BAD_REQUEST: 'BAD_REQUEST',
  /** Apollo's codes for an operation it cannot pick, and for persisted queries (not enabled). */
  OPERATION_RESOLUTION_FAILURE: 'OPERATION_RESOLUTION_FAILURE',
  PERSISTED_QUERY_NOT_FOUND: 'PERSISTED_QUERY_NOT_FOUND',
  PERSISTED_QUERY_NOT_SUPPORTED: 'PERSISTED_QUERY_NOT_SUPPORTED',
  /**
   * A subscription sent over plain HTTP without a streaming `Accept` (multipart/mixed with
   * `subscriptionSpec`, or text/event-stream): the message names the transports that stream.
   */
  STREAMING_TRANSPORT_REQUIRED: 'STREAMING_TRANSPORT_REQUIRED',
  /** A multipart or SSE stream refused because its user already holds `WS_MAX_SOCKETS_PER_USER` connections. */
  TOO_MANY_CONNECTIONS: 'TOO_MANY_CONNECTIONS',
  /** A multipart or SSE stream ended because its client did not read fast enough (the socket's 1013). */
  SLOW_CONSUMER: 'SLOW_CONSUMER',
  /** A multipart or SSE stream's token expired: reconnect with a fresh token and `after` / `Last-Event-ID`. */
  TOKEN_EXPIRED: 'TOKEN_EXPIRED',
  /** A multipart or SSE stream ended because an administrator or the platform revoked its user's sessions. */
  SESSION_REVOKED: 'SESSION_REVOKED',
  /** A multipart or SSE stream ended because the instance is shutting down: reconnect (to another instance). */
  SHUTTING_DOWN: 'SHUTTING_DOWN',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

abstract class CodedError extends GraphQLError {
  protected constructor(message: string, code: ErrorCode, extensions: GraphQLErrorExtensions = {}) {
    super(message, { extensions: { ...extensions, code } });
    Object.setPrototypeOf(this, new.target.prototype);
  }
}

/** No token, or a token that fails verification (HTTP). */
export class UnauthenticatedError extends CodedError {
  constructor(message = 'Authentication required: send "Authorization: Bearer <jwt>"') {
    super(message, ErrorCode.UNAUTHENTICATED, { http: { status: 401 } });
  }
}

/** Authenticated, but not allowed to see or change this. */
export class ForbiddenError extends CodedError {
  constructor(message = 'You are not allowed to access this resource') {
    super(message, ErrorCode.FORBIDDEN);
  }
}

/** Arguments that fail validation. */
export class BadUserInputError extends CodedError {
  constructor(message: string, extensions: GraphQLErrorExtensions = {}) {
    super(message, ErrorCode.BAD_USER_INPUT, extensions);
  }
}

/** No such entity. */
export class NotFoundError extends CodedError {
  constructor(message: string) {
    super(message, ErrorCode.NOT_FOUND);
  }
}

/** A socket already runs `WS_MAX_SUBSCRIPTIONS_PER_SOCKET` operations; this one is refused. */
export class TooManySubscriptionsError extends CodedError {
  constructor(max: number) {
    super(`Too many subscriptions on this connection: at most ${max}`, ErrorCode.TOO_MANY_SUBSCRIPTIONS, { max });
  }
}

/**
 * A subscription's `after` names an event the gateway no longer retains (older than
 * `EVENT_LOG_MAX_EVENTS` / `EVENT_LOG_MAX_AGE_SEC`), or one it never had for this caller: an
 * unknown id and another user's id get exactly this answer, so nothing tells whether the id
 * exists. The client refetches state with queries and subscribes again without `after`.
 */
export class HistoryExpiredError extends CodedError {
  constructor(
    message = 'The events after this eventId are no longer retained: query the current state, then subscribe again without `after`',
  ) {
    super(message, ErrorCode.HISTORY_EXPIRED);
  }
}

/** A subscription over plain HTTP without a streaming `Accept` (406). */
export class StreamingTransportRequiredError extends CodedError {
  constructor() {
    super(
      'Subscriptions need a streaming transport: WebSocket (graphql-transport-ws) on /graphql, multipart HTTP (Accept: multipart/mixed;subscriptionSpec="1.0") on /graphql, or SSE (Accept: text/event-stream) on /graphql/stream',
      ErrorCode.STREAMING_TRANSPORT_REQUIRED,
      { http: { status: 406 } },
    );
  }
}

/**
 * A subscription's `after` is not in the fast log (Redis lost it: a restart, a failover) and the
 * durable log that would place it cannot be read right now (database down). The gateway cannot
 * prove that nothing between `after` and the live stream is missing, so it refuses rather than
 * resume with a silent gap. Unlike HISTORY_EXPIRED the events may well still be retained: retry
 * the same `after` in a moment (graphql-ws retries a failed connection; a client may also
 * resubscribe), or give up and refetch state as for HISTORY_EXPIRED.
 */
export class HistoryUnavailableError extends CodedError {
  constructor(
    message = 'The gateway cannot tell right now which events followed this eventId: retry with the same `after` shortly, or query the current state and subscribe again without `after`',
  ) {
    super(message, ErrorCode.HISTORY_UNAVAILABLE);
  }
}

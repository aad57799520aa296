/**
 * Every WebSocket close code the gateway sends, in one place (docs/api.md#close-codes). The
 * `graphql-transport-ws` ones are graphql-ws' own `CloseCode` values (its PROTOCOL.md); the others
 * are RFC 6455 codes with the meaning this gateway gives them. Clients branch on these numbers:
 * never change one.
 */
import { CloseCode as ProtocolCloseCode } from 'graphql-ws';

export const CloseCode = {
  /** 1001: the instance is shutting down; reconnect (to another instance). */
  GoingAway: 1001,
  /** 1008: the user already holds `WS_MAX_SOCKETS_PER_USER` sockets. */
  TooManyConnections: 1008,
  /** 1013: the client does not read its messages fast enough (unsent bytes or a buffer overflowed). */
  TryAgainLater: 1013,
  /** 4400: a message that is not valid `graphql-transport-ws`. */
  BadRequest: ProtocolCloseCode.BadRequest,
  /** 4401: `subscribe` before the server acknowledged the connection. */
  Unauthorized: ProtocolCloseCode.Unauthorized,
  /**
   * 4403: missing, invalid, expired or revoked token (at connect, when the token expires while
   * open, or when the user's sessions are revoked: the reason says which).
   */
  Forbidden: ProtocolCloseCode.Forbidden,
  /** 4406: the socket did not ask for the `graphql-transport-ws` subprotocol. */
  SubprotocolNotAcceptable: ProtocolCloseCode.SubprotocolNotAcceptable,
  /** 4408: no `connection_init` within `WS_CONNECTION_INIT_TIMEOUT_MS`. */
  ConnectionInitialisationTimeout: ProtocolCloseCode.ConnectionInitialisationTimeout,
  /** 4409: `subscribe` with the id of an operation that is still running. */
  SubscriberAlreadyExists: ProtocolCloseCode.SubscriberAlreadyExists,
  /** 4429: a second `connection_init`. */
  TooManyInitialisationRequests: ProtocolCloseCode.TooManyInitialisationRequests,
  /** 4500: anything unexpected (the message is masked in production). */
  InternalServerError: ProtocolCloseCode.InternalServerError,
} as const;
export type CloseCode = (typeof CloseCode)[keyof typeof CloseCode];

/** Close reasons are at most 123 bytes (RFC 6455): longer ones are cut. */
export function closeReason(reason: string): string {
  return Buffer.byteLength(reason) <= 123 ? reason : `${Buffer.from(reason).subarray(0, 120).toString()}...`;
}

/**
 * The GraphQL context every resolver receives, whatever the transport: built by the operation
 * layer (src/graphql/context.ts) from an authenticated principal, once per HTTP request and once
 * per operation on a socket or stream (Apollo's context function is not called for WebSocket
 * operations, apollo-server #2296, so authorization is per operation everywhere).
 *
 * This file imports no domain: each domain adds its own service to `DomainServices` by declaration
 * merging, next to the service it describes, e.g. in src/domains/quota/quota.service.ts:
 *
 *     declare module '../../contracts/context' {
 *       interface DomainServices { readonly quota: QuotaService }
 *     }
 *
 * so adding a domain is adding a folder, and `app.ts` (the only place that wires) fills them in.
 */
import type { EventPubSub } from './ports';
import type { Topics } from './topics';

/** The caller, as the verified token describes it (docs/api.md#authentication-and-authorization). */
export interface AuthUser {
  /** The token's `sub`. */
  readonly id: string;
  readonly roles: readonly string[];
  readonly tenantId?: string;
  readonly username?: string;
  /** `roles` has `admin` or `super_admin`, or `isSuperAdmin: true`. */
  readonly isAdmin: boolean;
  /** Token expiry, epoch milliseconds. */
  readonly expiresAt: number;
  /** Token issue time (`iat`), epoch milliseconds, when the token has one. */
  readonly issuedAt?: number;
}

/** The domain services, one key per domain: see the file comment. */
// eslint-disable-next-line @typescript-eslint/no-empty-object-type -- filled by declaration merging
export interface DomainServices {}

/** What every resolver reaches through `context.services`. */
export interface Services extends DomainServices {
  readonly pubsub: EventPubSub;
  readonly topics: Topics;
  /** Called when a subscription starts (after pub/sub confirmed) and ends. */
  readonly onSubscriptionChange: (field: string, delta: 1 | -1) => void;
  /** Called as a subscription hands one event to its client (metrics: count and latency). */
  readonly onEventDelivered?: (field: string, event: { readonly occurredAt: string }) => void;
}

/** The connection an operation runs on (sockets and streams; not plain HTTP requests). */
export interface ConnectionControl {
  /** The client cannot keep up: end its connection (1013 on a socket) and release its operations. */
  slowConsumer(reason: string): void;
  /**
   * In-band token renewal (`renewSession`): verifies `token`, which must name the same `sub` and
   * be neither expired nor revoked, then moves the connection's credentials and expiry timer to
   * it; open operations keep running. Rejects with a `ForbiddenError` and keeps the old
   * credentials otherwise. Resolves with the new expiry (epoch milliseconds).
   */
  renew(token: string): Promise<number>;
  /** The transport this connection uses (`ws`, `multipart`, `sse`). */
  readonly transport: TransportName;
}

/** The transports a connection can use; metrics are labelled with these. */
export type TransportName = 'ws' | 'multipart' | 'sse';

export interface GraphQLContext {
  /** Null on HTTP without a token; always set on a socket or stream (unauthenticated ones are refused). */
  readonly user: AuthUser | null;
  readonly services: Services;
  /** Set on operations that run on a connection (WebSocket, multipart, SSE). */
  readonly connection?: ConnectionControl;
}

/**
 * The partition key of the ingest (docs/cluster.md): every event of one user carries the same key,
 * so the consistent-hash exchange puts them in one partition queue, read by one instance at a
 * time, in order. The router sets the header; a publisher that knows the user may set it itself
 * and publish straight to the partition exchange (the shortcut).
 */
import type { IncomingMessage } from './events';

/**
 * The AMQP header the partition exchange hashes (`hash-header`): the user id the event belongs
 * to. Set by the router, or by a publisher taking the shortcut.
 */
export const PARTITION_KEY_HEADER = 'x-partition-key';

/**
 * The key of an event that has no single user (a catalogue change, a system event): all of one
 * routing key's such events share a partition. Never read as an owner: user ids do not start
 * with this prefix.
 */
export const NO_USER_KEY_PREFIX = '\u0000routing:';

export function noUserKey(routingKey: string): string {
  return `${NO_USER_KEY_PREFIX}${routingKey}`;
}

/** The user a partition key names, or undefined for a no-user key. */
export function userOfPartitionKey(key: string | undefined): string | undefined {
  if (key === undefined || key === '' || key.startsWith(NO_USER_KEY_PREFIX)) return undefined;
  return key;
}

/** What the router does with one message of the router queue. */
export type RouteDecision =
  /** Republish under this partition key (the header the partition exchange hashes). */
  | { readonly action: 'partition'; readonly key: string }
  | { readonly action: 'dead-letter'; readonly reason: string }
  /** Acknowledge unread: no subscription takes its routing key. */
  | { readonly action: 'ignore' };

/**
 * The router stage as the bus sees it (bridge/partition-router.ts): messages pushed in delivery
 * order come back through `forward` with their decision, in that order (but for messages that
 * waited for their device's owner).
 */
export interface IngestRouter<T> {
  push(message: IncomingMessage, tag: T): void;
  close(): void;
}

/** Makes the router for one consuming session (a reconnect starts a new one). */
export type IngestRouterFactory = <T>(forward: (tag: T, decision: RouteDecision) => void) => IngestRouter<T>;

/**
 * Pub/sub topic names. Every topic is built here and nowhere else, so publisher (bridge) and
 * subscriber (resolver) can never disagree. One topic per user and event family: a subscriber
 * only ever receives its own user's traffic, never a global stream filtered per socket.
 */
import type { EventFamily } from './routing';

export type { EventFamily };

export interface Topics {
  /** The topic a user's events of one family are published on. */
  user(family: EventFamily, userId: string): string;
  /** A pattern matching every user's topic of a family (administrators without `userId`). */
  allUsers(family: EventFamily): string;
  /**
   * The Redis stream retaining a user's recent events of every family, in bridge order (resuming
   * with `after`). A key, not a channel: it never matches a subscription pattern.
   */
  userLog(userId: string): string;
  /** The stream retaining every user's recent events (administrators resuming without `userId`). */
  allUsersLog(): string;
  /**
   * The topic of one notification audience (docs/decisions/0101-notification-audiences.md): a user, a tenant, a role, or everyone.
   * Each is a plain channel; an instance holds it only while one of its sockets matches it, so an
   * announcement to everyone is one publish however many users are connected.
   */
  audience(scope: 'USER' | 'TENANT' | 'ROLE' | 'ALL', id?: string): string;
  /** The administrators' system feed. */
  system(): string;
  /** The stream retaining every audience's notifications (resuming `notifications` with `after`). */
  notificationLog(): string;
  /** The stream retaining the system feed. */
  systemLog(): string;
}

/**
 * Ids are escaped so that no user id can read as a Redis glob (`*`, `?`, `[`): a user whose id is
 * `*` must get a channel of their own, never the administrators' every-user pattern.
 */
function escapeId(id: string): string {
  return id.replace(/[*?[\]\\%]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

/** Topic names under `prefix` (per deployment, and per test run). */
export function createTopics(prefix: string): Topics {
  return {
    user: (family, userId) => `${prefix}${family}:user:${escapeId(userId)}`,
    allUsers: (family) => `${prefix}${family}:user:*`,
    userLog: (userId) => `${prefix}log:user:${escapeId(userId)}`,
    allUsersLog: () => `${prefix}log:all`,
    audience: (scope, id) => {
      if (scope === 'ALL') return `${prefix}notification:all`;
      if (id === undefined) throw new Error(`a ${scope} audience needs an id`);
      return `${prefix}notification:${scope.toLowerCase()}:${escapeId(id)}`;
    },
    system: () => `${prefix}system:all`,
    notificationLog: () => `${prefix}log:notifications`,
    systemLog: () => `${prefix}log:system`,
  };
}

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
  /**
   * Redis Cluster only: the sharded channels that together carry every user's events of a
   * family (administrators without `userId`; sharded pub/sub has no patterns). A user's events
   * always go to the same one of them (`allUsersFeedOf`), so their order holds there too.
   */
  allUsersFeeds(family: EventFamily): string[];
  /** The feed channel (of `allUsersFeeds`) a user's events of a family are also published on. */
  allUsersFeedOf(family: EventFamily, userId: string): string;
  /** The family of an `allUsers` pattern; undefined for any other topic. */
  familyOfAllUsers(topic: string): EventFamily | undefined;
}

/**
 * Feed channels per family on a cluster: enough to spread the administrators' traffic over every
 * shard of a large cluster, few enough that one every-user subscription costs a handful of
 * SSUBSCRIBEs. Never change it while instances run: publishers and subscribers must agree.
 */
export const ALL_USERS_FEEDS = 16;

/** FNV-1a, 32 bits: a stable bucket per user, the same in every instance. */
function bucketOf(id: string, buckets: number): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) {
    hash ^= id.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash % buckets;
}

/**
 * Ids are escaped so that no user id can read as a Redis glob (`*`, `?`, `[`): a user whose id is
 * `*` must get a channel of their own, never the administrators' every-user pattern.
 */
function escapeId(id: string): string {
  return id.replace(/[*?[\]\\%]/g, hex);
}

const hex = (c: string) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`;

/** A user id as a hash tag: braces escaped too, since a `}` inside would end the tag early. */
function hashTag(id: string): string {
  return `{${escapeId(id).replace(/[{}]/g, hex)}}`;
}

/** How topic names are built. */
export interface TopicOptions {
  /**
   * Redis Cluster: a user's channels and log carry the user id as their hash tag (`{...}`), so
   * they live in one slot and the publish-and-log script stays atomic on one shard. Off on one
   * Redis, whose names stay as they were: instances of the previous version keep exchanging
   * events with these during a rolling deploy. @default false
   */
  readonly hashTags?: boolean;
}

/**
 * Topic names under `prefix` (per deployment, and per test run). The prefix must not contain `{`
 * (config refuses it), or it would become every key's hash tag on a cluster.
 */
export function createTopics(prefix: string, options: TopicOptions = {}): Topics {
  const allUsersSuffix = ':user:*';
  const tag = options.hashTags === true ? hashTag : escapeId;
  // On a cluster every audience channel and the notifications log share one hash tag (one slot),
  // so publishing and logging stay one atomic script; likewise the system feed and its log.
  const notifications = options.hashTags === true ? '{notifications}:' : '';
  const systemTag = options.hashTags === true ? '{system}:' : '';
  return {
    user: (family, userId) => `${prefix}${family}:user:${tag(userId)}`,
    allUsers: (family) => `${prefix}${family}${allUsersSuffix}`,
    userLog: (userId) => `${prefix}log:user:${tag(userId)}`,
    allUsersLog: () => `${prefix}log:all`,
    audience: (scope, id) => {
      if (scope === 'ALL') return `${prefix}notification:${notifications}all`;
      if (id === undefined) throw new Error(`a ${scope} audience needs an id`);
      return `${prefix}notification:${notifications}${scope.toLowerCase()}:${escapeId(id).replace(/[{}]/g, hex)}`;
    },
    system: () => `${prefix}system:${systemTag}all`,
    notificationLog: () => `${prefix}log:${notifications}notifications`,
    systemLog: () => `${prefix}log:${systemTag}system`,
    allUsersFeeds: (family) => Array.from({ length: ALL_USERS_FEEDS }, (_, b) => `${prefix}${family}:all:{feed-${b}}`),
    allUsersFeedOf: (family, userId) => `${prefix}${family}:all:{feed-${bucketOf(userId, ALL_USERS_FEEDS)}}`,
    familyOfAllUsers(topic) {
      if (!topic.startsWith(prefix) || !topic.endsWith(allUsersSuffix)) return undefined;
      const family = topic.slice(prefix.length, topic.length - allUsersSuffix.length);
      return family === '' || family.includes(':') ? undefined : (family as EventFamily);
    },
  };
}

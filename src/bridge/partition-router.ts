/**
 * The router stage (docs/cluster.md): the one place the ingest's order is defined. Messages come
 * in the order they reached the router queue (single active consumer: one instance reads it);
 * each leaves, in that same order, with a decision: the partition key it is republished under
 * (its user), a dead-letter reason, or "ignored".
 *
 *   router queue --push(message)--> decide --forward(tag, decision), arrival order--> bus
 *
 * The key is the user the bridge would publish the event for: the same `normalizeMessage` decides,
 * so the router dead-letters exactly what the bridge would (a bad message is rejected here, at
 * once, and never stalls the router). Events that name only a device take its owner, learned
 * from the events routed before (a `device.created` precedes the events that need it), else from
 * the read model. That lookup holds the messages behind it for its few milliseconds: forwarding
 * stays in arrival order. When nobody is known to own the device yet (its first event may still
 * be in a partition queue, not yet applied, after a router hand-over), the message steps aside:
 * it waits, with the device's later owner-less messages behind it, until an event teaches the
 * owner or the read model knows it (`ownerAttempts` tries, `retryDelayMs` apart), and is
 * dead-lettered as `unknown owner` past that. Everything else keeps flowing meanwhile; an event
 * of the same user that arrives during that wait can overtake it, since its user was not known.
 */
import { deviceIdOf, EventRejection, hasOwner, normalizeMessage, sessionsRevokedUserId, type IncomingMessage } from '../contracts/events';
import { noUserKey, type IngestRouter, type RouteDecision } from '../contracts/partition';
import type { ReadModel } from '../contracts/ports';
import { isSessionRevocationRoutingKey } from '../contracts/routing';
import { UNKNOWN_OWNER } from './event-bridge';

export type { RouteDecision };

export interface RouterCounters {
  routed: number;
  deadLettered: number;
  ignored: number;
  /** Owners found in the read model rather than among the events routed before. */
  ownerLookups: number;
  /** Messages that had to wait for their device's owner. */
  waited: number;
}

/** Device -> owner pairs remembered from routed events; past it the oldest is forgotten. */
const MAX_OWNERS = 200_000;

interface Item<T> {
  readonly tag: T;
  readonly message: IncomingMessage;
  decision?: RouteDecision;
  /** The device whose owner this message needs (no decision until it is known). */
  readonly deviceId?: string;
  /** Pending read-model lookup. */
  lookup?: Promise<void>;
}

interface Wait<T> {
  readonly items: Item<T>[];
  tries: number;
  timer?: NodeJS.Timeout;
}

export class PartitionRouter<T> implements IngestRouter<T> {
  readonly counters: RouterCounters = { routed: 0, deadLettered: 0, ignored: 0, ownerLookups: 0, waited: 0 };
  private readonly owners = new Map<string, string>();
  private readonly fifo: Item<T>[] = [];
  private readonly waits = new Map<string, Wait<T>>();
  private closed = false;

  constructor(
    private readonly deps: {
      /** Called once per message, in arrival order (but for messages that waited for an owner). */
      readonly forward: (tag: T, decision: RouteDecision) => void;
      readonly readModel?: ReadModel;
      readonly maxMessageBytes: number;
      /** Read-model lookups of an unknown device's owner before `unknown owner`. @default 5 */
      readonly ownerAttempts?: number;
      /** Between those lookups. @default 1_000 */
      readonly retryDelayMs?: number;
      readonly onError?: (error: unknown) => void;
      /** Told every decision as it is forwarded (counters). */
      readonly onDecision?: (decision: RouteDecision) => void;
    },
  ) {}

  /** Takes the next message of the router queue (call in delivery order). */
  push(message: IncomingMessage, tag: T): void {
    if (this.closed) return;
    const item = this.decide(message, tag);
    this.fifo.push(item);
    this.pump();
  }

  /** The owner this router knows for a device (tests, metrics). */
  ownerOf(deviceId: string): string | undefined {
    return this.owners.get(deviceId);
  }

  /** Stops deciding: what is still waiting stays unsettled (the broker redelivers it). */
  close(): void {
    this.closed = true;
    for (const wait of this.waits.values()) clearTimeout(wait.timer);
    this.waits.clear();
    this.fifo.length = 0;
  }

  private decide(message: IncomingMessage, tag: T): Item<T> {
    let normalized;
    try {
      // Not an event but a user's command (revoke its sessions): in that user's order too.
      if (isSessionRevocationRoutingKey(message.routingKey)) {
        return { tag, message, decision: { action: 'partition', key: sessionsRevokedUserId(message, this.deps.maxMessageBytes) } };
      }
      normalized = normalizeMessage(message, this.deps.maxMessageBytes);
    } catch (error) {
      const reason =
        error instanceof EventRejection ? error.reason : `unprocessable: ${error instanceof Error ? error.message : String(error)}`;
      return { tag, message, decision: { action: 'dead-letter', reason } };
    }
    if (!normalized) return { tag, message, decision: { action: 'ignore' } };
    const { drafts, route } = normalized;
    const noUser = { tag, message, decision: { action: 'partition', key: noUserKey(message.routingKey) } } as const;
    // A catalogue event (one copy per user with the app) or an announcement has no single user.
    if (route.owner === 'installations' || drafts.length === 0) return noUser;
    const users = new Set(drafts.filter(hasOwner).map((draft) => draft.userId));
    if (users.size > 1) return noUser;
    const [user] = users;
    const deviceId = drafts.map(deviceIdOf).find((id) => id !== undefined);
    if (user !== undefined) {
      if (deviceId !== undefined) this.learn(deviceId, user);
      return { tag, message, decision: { action: 'partition', key: user } };
    }
    if (deviceId === undefined) return noUser;
    const owner = this.owners.get(deviceId);
    if (owner !== undefined) return { tag, message, decision: { action: 'partition', key: owner } };
    return { tag, message, deviceId };
  }

  private learn(deviceId: string, userId: string): void {
    if (this.owners.get(deviceId) !== userId) {
      this.owners.delete(deviceId);
      this.owners.set(deviceId, userId);
      if (this.owners.size > MAX_OWNERS) this.owners.delete(this.owners.keys().next().value as string);
    }
    // Messages that waited for this device arrived before the one teaching its owner: they go first.
    const wait = this.waits.get(deviceId);
    if (wait) this.release(deviceId, wait, { action: 'partition', key: userId });
  }

  /** Forwards the head of the line for as long as it is decided. */
  private pump(): void {
    while (!this.closed && this.fifo.length > 0) {
      const head = this.fifo[0] as Item<T>;
      if (head.decision === undefined) {
        const deviceId = head.deviceId as string;
        const known = this.owners.get(deviceId);
        if (known !== undefined) head.decision = { action: 'partition', key: known };
        else if (this.waits.has(deviceId)) {
          // Behind the device's earlier messages, which wait already.
          this.fifo.shift();
          this.joinWait(deviceId, head);
          continue;
        } else {
          this.startLookup(head, deviceId);
          return;
        }
      }
      this.fifo.shift();
      this.emit(head.tag, head.decision);
    }
  }

  private startLookup(head: Item<T>, deviceId: string): void {
    if (head.lookup) return;
    const { readModel } = this.deps;
    head.lookup = (readModel ? readModel.ownerOfDevice(deviceId) : Promise.resolve(undefined)).then(
      (owner) => {
        if (this.closed) return;
        head.lookup = undefined;
        if (owner !== undefined) {
          this.counters.ownerLookups++;
          this.owners.set(deviceId, owner);
          head.decision = { action: 'partition', key: owner };
        } else if (this.fifo[0] === head && !this.owners.has(deviceId)) {
          // Nobody known: step aside so the rest keeps flowing.
          this.fifo.shift();
          this.joinWait(deviceId, head);
        }
        this.pump();
      },
      (error: unknown) => {
        // The read model is down: that says nothing about the owner; step aside and try later.
        this.deps.onError?.(error);
        if (this.closed) return;
        head.lookup = undefined;
        if (this.fifo[0] === head) {
          this.fifo.shift();
          this.joinWait(deviceId, head, false);
        }
        this.pump();
      },
    );
  }

  private joinWait(deviceId: string, item: Item<T>, counts = true): void {
    this.counters.waited++;
    let wait = this.waits.get(deviceId);
    if (!wait) {
      wait = { items: [], tries: counts ? 1 : 0 };
      this.waits.set(deviceId, wait);
      this.scheduleRetry(deviceId, wait);
    }
    wait.items.push(item);
  }

  private scheduleRetry(deviceId: string, wait: Wait<T>): void {
    const attempts = this.deps.ownerAttempts ?? 5;
    if (wait.tries >= attempts) {
      this.release(deviceId, wait, { action: 'dead-letter', reason: UNKNOWN_OWNER });
      return;
    }
    wait.timer = setTimeout(() => {
      wait.timer = undefined;
      const lookup = this.deps.readModel ? this.deps.readModel.ownerOfDevice(deviceId) : Promise.resolve(undefined);
      lookup.then(
        (owner) => {
          if (this.closed || this.waits.get(deviceId) !== wait) return;
          if (owner !== undefined) {
            this.counters.ownerLookups++;
            this.learn(deviceId, owner);
            return;
          }
          wait.tries++;
          this.scheduleRetry(deviceId, wait);
        },
        (error: unknown) => {
          this.deps.onError?.(error);
          if (this.closed || this.waits.get(deviceId) !== wait) return;
          this.scheduleRetry(deviceId, wait);
        },
      );
    }, this.deps.retryDelayMs ?? 1_000);
  }

  private release(deviceId: string, wait: Wait<T>, decision: RouteDecision): void {
    clearTimeout(wait.timer);
    this.waits.delete(deviceId);
    for (const item of wait.items) this.emit(item.tag, decision);
  }

  private emit(tag: T, decision: RouteDecision): void {
    if (decision.action === 'partition') this.counters.routed++;
    else if (decision.action === 'dead-letter') this.counters.deadLettered++;
    else this.counters.ignored++;
    this.deps.onDecision?.(decision);
    this.deps.forward(tag, decision);
  }
}

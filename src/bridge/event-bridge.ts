/**
 * The bridge: one platform message in, one normalized event out to the fan-out.
 *
 *   bus (RabbitMQ | in-process) --IncomingMessage--> handle() --GatewayEvent--> pub/sub topic
 *
 * Decoding and validation live in `contracts/events.ts`; this file decides what happens to each
 * message: published then acknowledged, dead-lettered with a reason, requeued when the fan-out
 * (or the read model) is down, or acknowledged and counted when nobody subscribes to its routing
 * key. Between validation and publishing, the read model (when wired) names the owner of events
 * that name only a device, and applies the event, so that a query made after a subscriber saw
 * the event already returns the new state.
 *
 * The routing table (`contracts/routing.ts`) may make one message several events: one per
 * subscription its key feeds (`order.completed` feeds orderStatusChanged and orderCompleted), one
 * per audience an announcement names, one per user who has an app installed for `app.updated`.
 * The read model applies the first (when it changes an entity a query returns); every one is
 * published before the message is acknowledged.
 */
import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import {
  deviceIdOf,
  EventRejection,
  hasOwner,
  normalizeMessage,
  sessionsRevokedUserId,
  withOwner,
  type GatewayEvent,
  type GatewayEventDraft,
  type IncomingMessage,
  type NormalizedMessage,
} from '../contracts/events';
import type { EventFamily } from '../contracts/routing';
import type { Disposition, EventPubSub, MessageHandler, MessageRunHandler, PublishItem, ReadModel } from '../contracts/ports';
import { userOfPartitionKey, type RouteDecision } from '../contracts/partition';
import { isSessionRevocationRoutingKey } from '../contracts/routing';
import type { Topics } from '../contracts/topics';
import { traceContextOf } from '../contracts/trace';
import { PublishCoalescer } from './publish-coalescer';

/** Events remembered while they wait for their device's owner; past it the oldest is forgotten. */
const MAX_OWNER_WAITS = 10_000;

/** Families whose events change an entity a query returns: the others never touch the database. */
const READ_MODEL_FAMILIES: ReadonlySet<EventFamily> = new Set<EventFamily>([
  'quota',
  'device',
  'order',
  'app',
  'orderStatus',
  'installation',
]);

/** Users fetched per read-model query while fanning a catalogue event out, and in all at most. */
const FAN_OUT_PAGE = 1_000;
const MAX_FAN_OUT = 1_000_000;

/** Longest event id a client can resume after (`after`, domains/shared/subscription.ts). */
const MAX_EVENT_ID = 200;

/**
 * The id of one user's copy of a catalogue event: stable across redeliveries and instances, so
 * each user de-duplicates and resumes by it like any other.
 */
export function perUserEventId(eventId: string, userId: string): string {
  const id = `${eventId}:${userId}`;
  return id.length <= MAX_EVENT_ID ? id : createHash('sha256').update(id).digest('hex').slice(0, 32);
}

/** The dead-letter reason of an event naming a device nobody is known to own (docs/events.md#owner-lookup). */
export const UNKNOWN_OWNER = 'unknown owner';

const ACK: Disposition = { action: 'ack' };
/** What the messages after a retried one in its run get: they wait for it, in order. */
const BEHIND: Disposition = { action: 'requeue', reason: 'behind an earlier event that is retried' };

/** A message validated and given its owner, waiting for the read model and the fan-out. */
interface Pending {
  /** Its place in the run. */
  readonly index: number;
  readonly normalized: NormalizedMessage;
  readonly draft: GatewayEventDraft;
  readonly log: Logger;
  readonly events: GatewayEvent[];
}

/** The first message of a run that could not go, and why. */
interface Failure {
  readonly index: number;
  readonly disposition: Disposition;
}

export interface BridgeCounters {
  /** Every message handed to the bridge (the sum of the outcomes below). */
  consumed: number;
  /** Normalized and published to the fan-out. */
  bridged: number;
  /** Rejected to the dead-letter queue. */
  deadLettered: number;
  /** Acknowledged without use (a routing key no subscription takes). */
  ignored: number;
  /** Put back because the fan-out failed. */
  requeued: number;
}

export interface EventBridge {
  readonly handle: MessageHandler;
  /** A run of messages (what one user has waiting), handled as one batch. */
  readonly handleRun: MessageRunHandler;
  readonly counters: Readonly<BridgeCounters>;
  /**
   * Counts a message the partitioned ingest's router settled in the bridge's place (it
   * dead-letters and ignores before a message reaches a partition), so the counters and metrics
   * mean the same with and without partitions.
   */
  countRouted(decision: RouteDecision): void;
}

export function createEventBridge(deps: {
  readonly pubsub: EventPubSub;
  readonly topics: Topics;
  readonly maxMessageBytes: number;
  readonly logger: Logger;
  readonly readModel?: ReadModel;
  /** Tries of an event whose device has no known owner yet, before `unknown owner`. @default 1 */
  readonly ownerAttempts?: number;
  /** Revokes a user's sessions (`user.sessions.revoked`, `auth.sessions.revoked`); counted as bridged. */
  readonly revokeSessions?: (userId: string) => Promise<unknown>;
}): EventBridge {
  const { pubsub, topics, maxMessageBytes, logger, readModel } = deps;
  const ownerAttempts = deps.ownerAttempts ?? 1;
  /** Events waiting for their device's owner: tries so far, by eventId (bounded, oldest dropped). */
  const ownerTries = new Map<string, number>();
  const counters: BridgeCounters = { consumed: 0, bridged: 0, deadLettered: 0, ignored: 0, requeued: 0 };

  /** The events with their owner; throws `EventRejection(UNKNOWN_OWNER)` when nobody is known. */
  async function resolveOwners(normalized: NormalizedMessage, partitionKey: string | undefined): Promise<GatewayEvent[]> {
    const { drafts, route } = normalized;
    if (route.owner === 'installations') return fanOut(drafts[0] as GatewayEventDraft);
    let owner: string | undefined;
    const events: GatewayEvent[] = [];
    for (const draft of drafts) {
      if (hasOwner(draft)) {
        events.push(draft);
        continue;
      }
      if (owner === undefined) {
        const deviceId = deviceIdOf(draft);
        // The router resolved the owner when it routed the event (in arrival order, from the
        // device's earlier events): the same owner on every instance, without asking again.
        owner = deviceId !== undefined ? userOfPartitionKey(partitionKey) : undefined;
        owner ??= deviceId !== undefined && readModel ? await readModel.ownerOfDevice(deviceId) : undefined;
        if (owner === undefined) throw new EventRejection(UNKNOWN_OWNER);
      }
      events.push(withOwner(draft, owner));
    }
    return events;
  }

  /** A catalogue event (no user): one copy per user with the app installed, each with its own id. */
  async function fanOut(draft: GatewayEventDraft): Promise<GatewayEvent[]> {
    if (draft.family !== 'installation' || !readModel?.usersWithApp) return [];
    const app = { appId: draft.appId, packageName: draft.packageName };
    const users: string[] = [];
    for (let after: string | undefined; users.length < MAX_FAN_OUT;) {
      const page = await readModel.usersWithApp(app, FAN_OUT_PAGE, after);
      users.push(...page);
      if (page.length < FAN_OUT_PAGE) break;
      after = page[page.length - 1];
    }
    return users.map((userId) => ({ ...draft, userId, eventId: perUserEventId(draft.eventId, userId) }));
  }

  /**
   * The one place an event leaves the gateway for its subscribers. The pub/sub appends it to the
   * retained logs (resuming with `after`) in the same atomic step as the live publish, so the
   * log's order is the delivery order on every instance. A user's events go to the user's topic;
   * a notification to its audience's topic (one publish for everyone, a tenant or a role) and the
   * notifications log; a system event to the administrators' topic and the system log.
   */
  function publishItem(event: GatewayEvent): PublishItem {
    if (event.family === 'notification') {
      return { topic: topics.audience(event.audience.scope, event.audience.id), event, options: { log: topics.notificationLog() } };
    }
    if (event.family === 'system') return { topic: topics.system(), event, options: { log: topics.systemLog() } };
    return { topic: topics.user(event.family, event.userId), event };
  }
  const publisher = new PublishCoalescer(pubsub);

  const deadLetter = (reason: string, message: { routingKey: string; messageId?: string }, log: Logger): Disposition => {
    counters.deadLettered++;
    log.warn({ routingKey: message.routingKey, messageId: message.messageId, reason }, 'event dead-lettered');
    return { action: 'dead-letter', reason };
  };

  /**
   * A run of messages in delivery order (docs/architecture.md#batches): each is validated and
   * given its owner one after another; the read model applies the run's events in one batch (all
   * `apply` calls in one turn: one group commit, with every other run's of that turn), and the
   * fan-out takes them in one publish, in order. The first message that must be retried stops the
   * run: it and everything after it are requeued, so nothing of a user overtakes an earlier event.
   */
  const handleRun: MessageRunHandler = async (messages) => {
    const out: (Disposition | undefined)[] = new Array<Disposition | undefined>(messages.length);
    /** Messages validated and owned, waiting for the read model and the fan-out, in order. */
    let pending: Pending[] = [];
    /** Messages counted as consumed so far. */
    let looked = 0;
    /** `from` is retried; so is every later message not settled yet (dead letters and ignored ones stay settled). */
    const stop = (from: number, disposition: Disposition): Disposition[] => {
      for (let i = from; i < messages.length; i++) {
        if (i >= looked) counters.consumed++;
        if (i > from && out[i] !== undefined) continue;
        counters.requeued++;
        out[i] = i === from ? disposition : BEHIND;
      }
      return out as Disposition[];
    };
    const flush = async (): Promise<Failure | undefined> => {
      const failed = await publishPending(pending, out);
      pending = [];
      return failed;
    };
    for (const [index, message] of messages.entries()) {
      counters.consumed++;
      looked = index + 1;
      // Every line about this message carries the platform's trace id when it sent one.
      const trace = traceContextOf(message.body, maxMessageBytes);
      const log = trace ? logger.child({ traceId: trace.traceId, traceparent: trace.traceparent }) : logger;
      if (deps.revokeSessions && isSessionRevocationRoutingKey(message.routingKey)) {
        // Revocations are rare: what came before is published first, then they take their turn.
        const failed = await flush();
        if (failed) return stop(failed.index, failed.disposition);
        const disposition = await revoke(message, deps.revokeSessions, log);
        if (disposition.action === 'requeue') return stop(index, disposition);
        out[index] = disposition;
        continue;
      }
      const prepared = await prepare(message, index, log);
      if ('action' in prepared) {
        if (prepared.action !== 'requeue') {
          out[index] = prepared;
          continue;
        }
        const failed = await flush();
        return failed ? stop(failed.index, failed.disposition) : stop(index, prepared);
      }
      pending.push(prepared);
    }
    const failed = await flush();
    return failed ? stop(failed.index, failed.disposition) : (out as Disposition[]);
  };

  /** A message validated and owned, or what to do with it instead. */
  async function prepare(message: IncomingMessage, index: number, log: Logger): Promise<Pending | Disposition> {
    let normalized: NormalizedMessage | undefined;
    try {
      normalized = normalizeMessage(message, maxMessageBytes);
    } catch (error) {
      // Only validation says "never": anything else thrown here is a defect, dead-lettered with
      // its message rather than redelivered forever.
      const reason =
        error instanceof EventRejection ? error.reason : `unprocessable: ${error instanceof Error ? error.message : String(error)}`;
      return deadLetter(reason, message, log);
    }
    if (!normalized) {
      counters.ignored++;
      log.debug({ routingKey: message.routingKey }, 'event ignored: no subscription takes this routing key');
      return ACK;
    }
    const draft = normalized.drafts[0] as GatewayEventDraft;
    try {
      return { index, normalized, draft, log, events: await resolveOwners(normalized, message.partitionKey) };
    } catch (error) {
      if (error instanceof EventRejection && error.reason === UNKNOWN_OWNER) {
        // The device's own first event may not be applied yet (a backlog, another instance):
        // try again a few times before deciding nobody owns it.
        const tries = (ownerTries.get(draft.eventId) ?? 0) + 1;
        ownerTries.delete(draft.eventId);
        if (tries >= ownerAttempts) return deadLetter(UNKNOWN_OWNER, message, log);
        ownerTries.set(draft.eventId, tries);
        if (ownerTries.size > MAX_OWNER_WAITS) ownerTries.delete(ownerTries.keys().next().value as string);
        const reason = `owner of the device not known yet (try ${tries} of ${ownerAttempts})`;
        log.debug({ eventId: draft.eventId, reason }, 'event requeued');
        return { action: 'requeue', reason };
      }
      if (error instanceof EventRejection) return deadLetter(error.reason, message, log);
      const reason = `read model failed: ${error instanceof Error ? error.message : String(error)}`;
      log.warn({ eventId: draft.eventId, reason }, 'event requeued');
      return { action: 'requeue', reason };
    }
  }

  /**
   * Applies `pending` to the read model (one batch) and publishes what it applied, in order, in
   * one call; sets an `ack` in `out` per published message. Returns the first message that could
   * not go, with its requeue (it and the ones after it are left for `stop`), or undefined.
   */
  async function publishPending(pending: readonly Pending[], out: (Disposition | undefined)[]): Promise<Failure | undefined> {
    if (pending.length === 0) return undefined;
    // Every `apply` in this turn: one group commit (docs/architecture.md#the-read-model).
    const applied = await Promise.allSettled(pending.map(withEntities));
    let ready = 0;
    let failure: Failure | undefined;
    for (const result of applied) {
      if (result.status === 'rejected') {
        const reason: unknown = result.reason;
        const item = pending[ready] as Pending;
        const text = `read model failed: ${reason instanceof Error ? reason.message : String(reason)}`;
        item.log.warn({ eventId: item.draft.eventId, reason: text }, 'event requeued');
        failure = { index: item.index, disposition: { action: 'requeue', reason: text } };
        break;
      }
      ready++;
    }
    const items: PublishItem[] = [];
    for (let i = 0; i < ready; i++) {
      const item = pending[i] as Pending;
      for (const event of published(item.normalized, (applied[i] as PromiseFulfilledResult<GatewayEvent[]>).value)) {
        items.push(publishItem(event));
      }
    }
    try {
      await publisher.publish(items);
    } catch (error) {
      const first = pending[0] as Pending;
      const reason = `fan-out publish failed: ${error instanceof Error ? error.message : String(error)}`;
      first.log.warn({ eventId: first.draft.eventId, reason, events: items.length }, 'events requeued');
      return { index: first.index, disposition: { action: 'requeue', reason } };
    }
    for (let i = 0; i < ready; i++) {
      const { index, draft, log, events } = pending[i] as Pending;
      ownerTries.delete(draft.eventId);
      counters.bridged++;
      out[index] = ACK;
      log.debug({ eventId: draft.eventId, type: draft.type, userId: draft.userId, events: events.length }, 'event bridged');
    }
    return failure;
  }

  /** The message's events, the first carrying its entity as the read model wrote it (no query per delivery). */
  async function withEntities({ normalized, events }: Pending): Promise<GatewayEvent[]> {
    const primary = events[0];
    if (!primary || !readModel || normalized.route.owner === 'installations' || !READ_MODEL_FAMILIES.has(primary.family)) return events;
    return [await readModel.apply(primary), ...events.slice(1)];
  }

  const handle: MessageHandler = async (message) => (await handleRun([message]))[0] as Disposition;

  async function revoke(message: IncomingMessage, revokeSessions: (userId: string) => Promise<unknown>, log: Logger): Promise<Disposition> {
    let userId: string;
    try {
      userId = sessionsRevokedUserId(message, maxMessageBytes);
    } catch (error) {
      return deadLetter(error instanceof EventRejection ? error.reason : 'unprocessable', message, log);
    }
    try {
      await revokeSessions(userId);
    } catch (error) {
      counters.requeued++;
      const reason = `session revocation failed: ${error instanceof Error ? error.message : String(error)}`;
      log.warn({ userId, reason }, 'event requeued');
      return { action: 'requeue', reason };
    }
    counters.bridged++;
    log.info({ userId, type: message.routingKey }, 'sessions revoked by a platform event');
    return { action: 'ack' };
  }

  const countRouted = (decision: RouteDecision) => {
    if (decision.action === 'partition') return;
    counters.consumed++;
    if (decision.action === 'dead-letter') counters.deadLettered++;
    else counters.ignored++;
  };

  return { handle, handleRun, counters, countRouted };
}

/**
 * What goes to the fan-out for a message's events: a key feeding two subscriptions is one event,
 * the first (richer) one under the older family (`ALSO_ON` in routing.ts), on the older topic; an
 * announcement's audiences and a catalogue event's users each get theirs, in order.
 */
function published(normalized: NormalizedMessage, events: readonly GatewayEvent[]): GatewayEvent[] {
  const { feeds } = normalized.route;
  const [first] = events;
  if (feeds.length < 2 || !first) return [...events];
  return [{ ...first, family: feeds[feeds.length - 1] } as GatewayEvent];
}

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
 */
import type { Logger } from 'pino';
import {
  deviceIdOf,
  EventRejection,
  hasOwner,
  normalizeEvent,
  sessionsRevokedUserId,
  withOwner,
  type GatewayEvent,
  type GatewayEventDraft,
  type IncomingMessage,
} from '../contracts/events';
import type { Disposition, EventPubSub, MessageHandler, ReadModel } from '../contracts/ports';
import { userOfPartitionKey, type RouteDecision } from '../contracts/partition';
import { isSessionRevocationRoutingKey } from '../contracts/routing';
import type { Topics } from '../contracts/topics';
import { traceContextOf } from '../contracts/trace';

/** Events remembered while they wait for their device's owner; past it the oldest is forgotten. */
const MAX_OWNER_WAITS = 10_000;

/** The dead-letter reason of an event naming a device nobody is known to own (docs/events.md#owner-lookup). */
export const UNKNOWN_OWNER = 'unknown owner';

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

  /** The event with its owner; throws `EventRejection(UNKNOWN_OWNER)` when nobody is known. */
  async function resolveOwner(draft: GatewayEventDraft, partitionKey: string | undefined): Promise<GatewayEvent> {
    if (hasOwner(draft)) return draft;
    const deviceId = deviceIdOf(draft);
    // The router resolved the owner when it routed the event (in arrival order, from the device's
    // earlier events): the same owner on every instance, without asking the read model again.
    const routed = deviceId !== undefined ? userOfPartitionKey(partitionKey) : undefined;
    if (routed !== undefined) return withOwner(draft, routed);
    const owner = deviceId !== undefined && readModel ? await readModel.ownerOfDevice(deviceId) : undefined;
    if (owner === undefined) throw new EventRejection(UNKNOWN_OWNER);
    return withOwner(draft, owner);
  }

  /**
   * The one place an event leaves the gateway for its subscribers. The pub/sub appends it to the
   * retained logs (resuming with `after`) in the same atomic step as the live publish, so the
   * log's order is the delivery order on every instance.
   */
  function publish(event: GatewayEvent): Promise<void> {
    return pubsub.publish(topics.user(event.family, event.userId), event);
  }

  const deadLetter = (reason: string, message: { routingKey: string; messageId?: string }, log: Logger): Disposition => {
    counters.deadLettered++;
    log.warn({ routingKey: message.routingKey, messageId: message.messageId, reason }, 'event dead-lettered');
    return { action: 'dead-letter', reason };
  };

  const handle: MessageHandler = async (message): Promise<Disposition> => {
    counters.consumed++;
    // Every line about this message carries the platform's trace id when it sent one.
    const trace = traceContextOf(message.body, maxMessageBytes);
    const log = trace ? logger.child({ traceId: trace.traceId, traceparent: trace.traceparent }) : logger;
    if (deps.revokeSessions && isSessionRevocationRoutingKey(message.routingKey)) return revoke(message, deps.revokeSessions, log);
    let draft: GatewayEventDraft | undefined;
    try {
      draft = normalizeEvent(message, maxMessageBytes);
    } catch (error) {
      // Only validation says "never": anything else thrown here is a defect, dead-lettered with
      // its message rather than redelivered forever.
      const reason =
        error instanceof EventRejection ? error.reason : `unprocessable: ${error instanceof Error ? error.message : String(error)}`;
      return deadLetter(reason, message, log);
    }
    if (!draft) {
      counters.ignored++;
      log.debug({ routingKey: message.routingKey }, 'event ignored: no subscription takes this routing key');
      return { action: 'ack' };
    }
    let event: GatewayEvent;
    try {
      event = await resolveOwner(draft, message.partitionKey);
      await readModel?.apply(event);
    } catch (error) {
      if (error instanceof EventRejection && error.reason === UNKNOWN_OWNER) {
        // The device's own first event may not be applied yet (a backlog, another instance):
        // try again a few times before deciding nobody owns it.
        const tries = (ownerTries.get(draft.eventId) ?? 0) + 1;
        ownerTries.delete(draft.eventId);
        if (tries >= ownerAttempts) return deadLetter(UNKNOWN_OWNER, message, log);
        ownerTries.set(draft.eventId, tries);
        if (ownerTries.size > MAX_OWNER_WAITS) ownerTries.delete(ownerTries.keys().next().value as string);
        counters.requeued++;
        const reason = `owner of the device not known yet (try ${tries} of ${ownerAttempts})`;
        log.debug({ eventId: draft.eventId, reason }, 'event requeued');
        return { action: 'requeue', reason };
      }
      if (error instanceof EventRejection) return deadLetter(error.reason, message, log);
      counters.requeued++;
      const reason = `read model failed: ${error instanceof Error ? error.message : String(error)}`;
      log.warn({ eventId: draft.eventId, reason }, 'event requeued');
      return { action: 'requeue', reason };
    }
    try {
      await publish(event);
    } catch (error) {
      counters.requeued++;
      const reason = `fan-out publish failed: ${error instanceof Error ? error.message : String(error)}`;
      log.warn({ eventId: event.eventId, reason }, 'event requeued');
      return { action: 'requeue', reason };
    }
    ownerTries.delete(event.eventId);
    counters.bridged++;
    log.debug({ eventId: event.eventId, type: event.type, userId: event.userId }, 'event bridged');
    return { action: 'ack' };
  };

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

  return { handle, counters, countRouted };
}

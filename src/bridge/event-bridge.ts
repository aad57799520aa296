/**
 * The bridge: one platform message in, one normalized event out to the fan-out.
 *
 *   bus (RabbitMQ | in-process) --IncomingMessage--> handle() --GatewayEvent--> pub/sub topic
 *
 * Decoding and validation live in `contracts/events.ts`; this file decides what happens to each
 * message: published then acknowledged, dead-lettered with a reason, requeued when the fan-out
 * is down, or acknowledged and counted when nobody subscribes to its routing key.
 */
import type { Logger } from 'pino';
import {
  decodeMessage,
  EventRejection,
  normalizeQuotaEvent,
  type GatewayEvent,
  type IncomingMessage,
} from '../contracts/events';
import type { Disposition, EventPubSub, MessageHandler } from '../contracts/ports';
import { isQuotaRoutingKey } from '../contracts/routing';
import type { Topics } from '../contracts/topics';
import { traceContextOf } from '../contracts/trace';

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
}

export function createEventBridge(deps: {
  readonly pubsub: EventPubSub;
  readonly topics: Topics;
  readonly maxMessageBytes: number;
  readonly logger: Logger;
}): EventBridge {
  const { pubsub, topics, maxMessageBytes, logger } = deps;
  const counters: BridgeCounters = { consumed: 0, bridged: 0, deadLettered: 0, ignored: 0, requeued: 0 };

  function normalize(message: IncomingMessage): GatewayEvent | undefined {
    if (!isQuotaRoutingKey(message.routingKey)) return undefined;
    return normalizeQuotaEvent(message.routingKey, decodeMessage(message, maxMessageBytes));
  }

  /**
   * The one place an event leaves the gateway for its subscribers. A retained per-user log (for
   * resuming with `after`) is written here too when it exists, so both always agree.
   */
  function publish(event: GatewayEvent): Promise<void> {
    return pubsub.publish(topics.user(event.family, event.userId), event);
  }

  const handle: MessageHandler = async (message): Promise<Disposition> => {
    counters.consumed++;
    // Every line about this message carries the platform's trace id when it sent one.
    const trace = traceContextOf(message.body, maxMessageBytes);
    const log = trace ? logger.child({ traceId: trace.traceId, traceparent: trace.traceparent }) : logger;
    let event: GatewayEvent | undefined;
    try {
      event = normalize(message);
    } catch (error) {
      const reason =
        error instanceof EventRejection ? error.reason : `unprocessable: ${error instanceof Error ? error.message : String(error)}`;
      counters.deadLettered++;
      log.warn({ routingKey: message.routingKey, messageId: message.messageId, reason }, 'event dead-lettered');
      return { action: 'dead-letter', reason };
    }
    if (!event) {
      counters.ignored++;
      log.debug({ routingKey: message.routingKey }, 'event ignored: no subscription takes this routing key');
      return { action: 'ack' };
    }
    try {
      await publish(event);
    } catch (error) {
      counters.requeued++;
      const reason = `fan-out publish failed: ${error instanceof Error ? error.message : String(error)}`;
      log.warn({ eventId: event.eventId, reason }, 'event requeued');
      return { action: 'requeue', reason };
    }
    counters.bridged++;
    log.debug({ eventId: event.eventId, type: event.type, userId: event.userId }, 'event bridged');
    return { action: 'ack' };
  };

  return { handle, counters };
}

/**
 * This instance's live subscribers of each Redis channel, dispatched here: one subscription per
 * channel on the `ChannelHub` (graphql-redis-subscriptions, or our sharded channels on a
 * cluster), whose one listener hands each message to every local subscription's queue in a plain
 * loop (docs/decisions/0605-delivery-frames-and-socket-memory.md).
 *
 * A subscription per subscriber on the hub cost, per subscriber, four closures and their contexts
 * here plus graphql-redis-subscriptions' own entry (≈0.5 KB of heap per socket), and per message
 * and subscriber its `forEach` step, an entry lookup and our validity check. Here a subscriber is
 * its queue (a `FanoutQueue`, which releases itself without a closure) in its channel's Set; the
 * message is checked once.
 *
 * Semantics as before: `subscribe` resolves once Redis confirmed the SUBSCRIBE (a second subscriber
 * of a channel whose SUBSCRIBE is in flight waits for the same one), a release drops the queue at
 * once, and the channel's last release unsubscribes, never synchronously (see `unsubscribe`).
 * Resumed subscriptions (`after`) keep their own hub subscription (redis-pubsub.ts).
 */
import type { Logger } from 'pino';
import type { GatewayEvent } from '../../contracts/events';
import { DispatchLedger, type Dispatched } from '../../lib/dispatch-ledger';
import { EventQueue, type Classification, type EventStream, type QueueOptions } from '../../lib/event-queue';

/**
 * Where channels are subscribed: graphql-redis-subscriptions on one Redis (SUBSCRIBE/PSUBSCRIBE),
 * our own sharded channels on a cluster (SSUBSCRIBE). Both reference-count channels per instance.
 */
export interface ChannelHub {
  subscribe(topic: string, onMessage: (message: unknown) => void, options: { pattern: boolean }): Promise<number>;
  unsubscribe(id: number): void;
}

/** What the bridge publishes: an object with its family and id (anything else on a channel is noise). */
export function isGatewayEvent(value: unknown): value is GatewayEvent {
  if (typeof value !== 'object' || value === null) return false;
  const { family, eventId } = value as { family?: unknown; eventId?: unknown };
  return typeof family === 'string' && typeof eventId === 'string';
}

const UNBOUNDED: QueueOptions<GatewayEvent> = { maxBuffered: Number.POSITIVE_INFINITY, coalesceMs: 0 };
const NOTHING = (): void => undefined;

/** One subscriber's queue: released, it leaves its channel itself. */
class FanoutQueue extends EventQueue<GatewayEvent> {
  constructor(
    private readonly channel: Channel,
    options: QueueOptions<GatewayEvent>,
  ) {
    super(NOTHING, options, channel.ledger);
  }

  protected override released(): void {
    this.channel.leave(this);
  }
}

/** One channel: its hub subscription, its local queues and their shared coalescing ledger. */
class Channel {
  readonly queues = new Set<FanoutQueue>();
  readonly ledger: DispatchLedger<GatewayEvent>;
  /** Resolves once Redis confirmed the SUBSCRIBE. */
  readonly subscribed: Promise<void>;
  private id: number | undefined;
  private closed = false;

  constructor(
    private readonly owner: TopicFanout,
    readonly key: string,
    readonly topic: string,
    pattern: boolean,
  ) {
    this.ledger = new DispatchLedger(owner.delivery.coalesceMs);
    this.subscribed = owner.hub
      .subscribe(topic, (message) => this.dispatch(message), { pattern })
      .then((id) => {
        this.id = id;
        // Every subscriber left while SUBSCRIBE was in flight.
        if (this.closed) owner.unsubscribe(id, topic);
      });
    // Each subscriber awaits it and sees a failure; this only keeps it from counting as unhandled.
    this.subscribed.catch(() => undefined);
  }

  /** Nothing may throw into ioredis' data handler. */
  private dispatch(message: unknown): void {
    if (!isGatewayEvent(message)) {
      this.owner.logger.warn({ topic: this.topic }, 'redis message that is not a gateway event; dropped');
      return;
    }
    // Classified, timed and recorded once for every queue (lib/dispatch-ledger.ts).
    const { delivery } = this.owner;
    const now = Date.now();
    let kind: Classification | undefined;
    let previous: Dispatched<GatewayEvent> | undefined;
    try {
      kind = delivery.coalesceMs > 0 ? delivery.classify?.(message) : undefined;
      previous = this.ledger.dispatch(kind?.entity, message, now);
    } catch (error) {
      this.owner.logger.warn({ err: error, topic: this.topic }, 'redis message could not be classified; dropped');
      return;
    }
    // A push may release queues of this channel (a slow consumer's connection ends): a Set skips
    // what was deleted while it is iterated.
    for (const queue of this.queues) {
      try {
        queue.pushDispatched(message, kind, now, previous);
      } catch (error) {
        this.owner.logger.warn({ err: error, topic: this.topic }, 'redis message could not be queued; dropped');
      }
    }
  }

  leave(queue: FanoutQueue): void {
    if (!this.queues.delete(queue) || this.queues.size > 0) return;
    this.close();
  }

  /** The last subscriber left (or SUBSCRIBE failed): the next subscriber of the topic starts a new channel. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.owner.forget(this);
    if (this.id !== undefined) this.owner.unsubscribe(this.id, this.topic);
  }
}

export class TopicFanout {
  private readonly channels = new Map<string, Channel>();

  constructor(
    /** @internal */
    readonly hub: ChannelHub,
    /** @internal */
    readonly logger: Logger,
    /** Bound and coalescing of each subscription's queue. @internal */
    readonly delivery: QueueOptions<GatewayEvent> = UNBOUNDED,
  ) {}

  /** Channels subscribed now (tests). */
  get channelCount(): number {
    return this.channels.size;
  }

  /** A new subscriber's stream of `topic`; resolves once Redis confirmed the channel's SUBSCRIBE. */
  async subscribe(topic: string, pattern: boolean): Promise<EventStream<GatewayEvent>> {
    const key = `${pattern ? 'p' : 'c'}:${topic}`;
    let channel = this.channels.get(key);
    if (channel === undefined) {
      channel = new Channel(this, key, topic, pattern);
      this.channels.set(key, channel);
    }
    const queue = new FanoutQueue(channel, this.delivery);
    channel.queues.add(queue);
    try {
      await channel.subscribed;
    } catch (error) {
      channel.queues.delete(queue);
      channel.close();
      throw error;
    }
    return queue;
  }

  /** @internal */
  forget(channel: Channel): void {
    if (this.channels.get(channel.key) === channel) this.channels.delete(channel.key);
  }

  /**
   * Drops the hub subscription, never synchronously: a release can happen inside
   * graphql-redis-subscriptions' own delivery loop (a slow consumer's overflow closes its socket,
   * returning its other iterators on the same channel), and graphql-redis-subscriptions 2.7 then
   * reads an entry it has just deleted and throws out of ioredis' data handler, taking the
   * process down.
   * @internal
   */
  unsubscribe(id: number, topic: string): void {
    queueMicrotask(() => {
      try {
        this.hub.unsubscribe(id);
      } catch (error) {
        this.logger.debug({ err: error, topic }, 'redis unsubscribe of an unknown subscription');
      }
    });
  }
}

/**
 * Redis pub/sub fan-out through graphql-redis-subscriptions. Its `RedisPubSub` already shares one
 * Redis SUBSCRIBE per channel among all local subscribers (reference counted); this adapter
 * gives it the gateway's `EventPubSub` shape: `subscribe` resolves only once Redis confirmed the
 * SUBSCRIBE, and the iterator's `return()` drops the reference.
 */
import { RedisPubSub } from 'graphql-redis-subscriptions';
import Redis from 'ioredis';
import type { Logger } from 'pino';
import type { GatewayEvent } from '../../contracts/events';
import type { DependencyStatus, EventPubSub } from '../../contracts/ports';
import { redisClientName } from './client-name';
import { createEventQueue, type EventStream, type QueueOptions } from '../../lib/event-queue';

/** What the bridge publishes: an object with its family and id (anything else on a channel is noise). */
function isGatewayEvent(value: unknown): value is GatewayEvent {
  if (typeof value !== 'object' || value === null) return false;
  const { family, eventId } = value as { family?: unknown; eventId?: unknown };
  return typeof family === 'string' && typeof eventId === 'string';
}

export class RedisEventPubSub implements EventPubSub {
  private readonly publisher: Redis;
  private readonly subscriber: Redis;
  private readonly pubsub: RedisPubSub;
  private lastError: string | undefined;
  /** Reconnections since start (for metrics): `ready` after the first, per connection. */
  reconnects = 0;
  /** The subscriber is connected and every channel it holds is subscribed again. */
  private subscriberLive = false;
  private subscriberLink: Promise<void> | undefined;

  /** Redis client names of this instance's connections (`CLIENT LIST` shows them to operators). */
  readonly clientNames: { readonly publisher: string; readonly subscriber: string };

  constructor(
    url: string,
    topicPrefix: string,
    private readonly logger: Logger,
    /** Bound and coalescing of each subscription's buffer. */
    private readonly delivery?: QueueOptions<GatewayEvent>,
  ) {
    this.clientNames = { publisher: redisClientName('publisher', topicPrefix), subscriber: redisClientName('subscriber', topicPrefix) };
    const options = {
      // Commands issued while Redis is away wait for the reconnect rather than fail at once;
      // the bridge then requeues what could not be published.
      maxRetriesPerRequest: 3,
      retryStrategy: (attempt: number) => Math.min(100 * 2 ** attempt, 5_000),
    };
    this.publisher = new Redis(url, { ...options, connectionName: this.clientNames.publisher });
    this.subscriber = new Redis(url, { ...options, connectionName: this.clientNames.subscriber });
    for (const [role, client] of [['publisher', this.publisher], ['subscriber', this.subscriber]] as const) {
      // Without an 'error' listener ioredis' error events crash the process.
      client.on('error', (error: Error) => {
        this.lastError = error.message;
        this.logger.warn({ err: error, role }, 'redis connection error');
      });
      let readyBefore = false;
      client.on('ready', () => {
        this.lastError = undefined;
        if (readyBefore) {
          this.reconnects++;
          this.logger.info({ role }, 'redis reconnected');
        }
        readyBefore = true;
        if (role === 'subscriber') {
          // ioredis re-issues SUBSCRIBE/PSUBSCRIBE for every live channel right after 'ready'; a
          // PING queued behind them answers once Redis has confirmed them all.
          const link = this.subscriber.ping().then(
            () => {
              if (this.subscriberLink === link) this.subscriberLive = true;
            },
            () => undefined,
          );
          this.subscriberLink = link;
        }
      });
      client.on('close', () => {
        if (role === 'subscriber') this.subscriberLive = false;
      });
    }
    this.pubsub = new RedisPubSub({ publisher: this.publisher, subscriber: this.subscriber });
    // RedisPubSub.unsubscribe() fires UNSUBSCRIBE/PUNSUBSCRIBE and drops the promises; while Redis
    // is away they reject with nobody listening. Observe them here: the channel is gone either way
    // (ioredis only resubscribes what is still subscribed when it reconnects).
    for (const command of ['unsubscribe', 'punsubscribe'] as const) {
      const original = this.subscriber[command].bind(this.subscriber) as (...args: unknown[]) => Promise<unknown>;
      (this.subscriber as unknown as Record<string, unknown>)[command] = (...args: unknown[]) => {
        const result = original(...args);
        result.catch((error: unknown) => this.logger.debug({ err: error, command }, 'redis unsubscribe failed'));
        return result;
      };
    }
  }

  /**
   * Publishes to every instance. Refused while this instance's own subscriber is away or still
   * resubscribing: its sockets would miss the event, so the bridge requeues it instead and
   * publishes it again once this instance listens.
   */
  async publish(topic: string, event: GatewayEvent): Promise<void> {
    if (!this.subscriberLive) throw new Error('redis subscriber is reconnecting');
    await this.pubsub.publish(topic, event);
  }

  async subscribe(topic: string, options: { pattern?: boolean } = {}): Promise<EventStream<GatewayEvent>> {
    let subscriptionId: number | undefined;
    let released = false;
    const unsubscribe = (id: number) =>
      // Never synchronously: a release can happen inside RedisPubSub's own delivery loop (a slow
      // consumer's overflow closes its socket, returning its other iterators on the same channel),
      // and graphql-redis-subscriptions 2.7 then reads an entry it has just deleted and throws out
      // of ioredis' data handler, taking the process down.
      queueMicrotask(() => {
        try {
          this.pubsub.unsubscribe(id);
        } catch (error) {
          this.logger.debug({ err: error, topic }, 'redis unsubscribe of an unknown subscription');
        }
      });
    const queue = createEventQueue<GatewayEvent>(() => {
      released = true;
      if (subscriptionId !== undefined) unsubscribe(subscriptionId);
    }, this.delivery);
    subscriptionId = await this.pubsub.subscribe<GatewayEvent>(
      topic,
      (event) => {
        // Whatever arrives on a channel (another publisher, a non-object) must not throw into
        // ioredis' data handler either.
        if (!isGatewayEvent(event)) {
          this.logger.warn({ topic }, 'redis message that is not a gateway event; dropped');
          return;
        }
        try {
          queue.push(event);
        } catch (error) {
          this.logger.warn({ err: error, topic }, 'redis message could not be queued; dropped');
        }
      },
      { pattern: options.pattern === true },
    );
    // The client may have gone while SUBSCRIBE was in flight.
    if (released) unsubscribe(subscriptionId);
    return queue.iterator;
  }

  status(): DependencyStatus {
    const up = this.publisher.status === 'ready' && this.subscriber.status === 'ready' && this.subscriberLive;
    return up ? { up } : { up, detail: this.lastError ?? `publisher ${this.publisher.status}, subscriber ${this.subscriber.status}` };
  }

  /**
   * Resolves once both connections answered (start-up); rejects when Redis is not reachable
   * within ioredis' retries. The caller may go on: ioredis keeps reconnecting by itself.
   */
  async ready(): Promise<void> {
    await Promise.all([this.publisher.ping(), this.subscriber.ping()]);
    await this.subscriberLink;
  }

  async close(): Promise<void> {
    await Promise.allSettled([this.publisher.quit(), this.subscriber.quit()]);
  }
}

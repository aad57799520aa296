/**
 * One subscription over several pub/sub topics: `notifications` (one topic per audience) and the
 * §7 subscriptions whose keys partly arrive on an older family's topic (`ALSO_ON` in routing.ts).
 */
import type { ConnectionControl, Services } from '../../contracts/context';
import type { GatewayEvent } from '../../contracts/events';
import { notifyOverflow, SlowConsumerError, type Consumer, type EventStream, type OverflowListener } from '../../lib/event-queue';
import type { SubscriptionStream } from './subscription';

/** Event ids remembered for de-duplication: far more than one event's copies can be apart. */
const RECENT_IDS = 1_024;

/** A bounded set of recently seen ids: the oldest is forgotten first. */
class RecentIds {
  private readonly ids = new Set<string>();
  has(id: string): boolean {
    return this.ids.has(id);
  }
  add(id: string): void {
    this.ids.add(id);
    if (this.ids.size > RECENT_IDS) this.ids.delete(this.ids.values().next().value as string);
  }
}

type Waiter<T> = { resolve: (result: IteratorResult<T>) => void; reject: (error: unknown) => void };

/**
 * Events waiting in one merged subscription before it is too slow (1013). A constant, as high as
 * the default `EVENT_BUFFER_MAX`: the sources' own bounds do not apply here (they hand every
 * event straight on).
 */
export const MAX_MERGED_BUFFERED = 1_000;

/**
 * Several pub/sub streams as one subscription stream, in the order the events arrived here, each
 * eventId once (a notification reaching a caller through two audiences; an event replayed from
 * the log that also arrived live on the other topic). The sources are attached at once and never hold anything back; what the
 * consumer cannot take yet (a backed-up socket, nobody pulling) waits here, bounded. The first
 * source to end (a release, an error) ends them all, once.
 */
export class MergedStream<T extends GatewayEvent> implements SubscriptionStream<T>, Consumer<GatewayEvent> {
  private readonly seen = new RecentIds();
  private readonly field: string;
  private readonly services: Services;
  private readonly connection: ConnectionControl | undefined;
  private readonly waiting: T[] = [];
  private open = true;
  private finished = false;
  private endError: Error | undefined;
  private consumer: Consumer<T> | undefined;
  private endNotified = false;
  private waiter: Waiter<T> | undefined;
  private overflowListeners: OverflowListener[] = [];

  constructor(
    private readonly sources: readonly EventStream<GatewayEvent>[],
    /** Which events this subscription takes (its user, family, audiences, narrowing arguments). */
    private readonly accepts: (event: GatewayEvent) => boolean,
    options: { field: string; services: Services; connection?: ConnectionControl },
  ) {
    this.field = options.field;
    this.services = options.services;
    this.connection = options.connection;
    this.services.onSubscriptionChange(this.field, 1);
    // This stream is every source's consumer and overflow listener (no closures per source).
    for (const source of sources) {
      source.onOverflow(this);
      source.attach(this);
    }
  }

  /** A source's event: it never waits in the source (the bound that counts is this stream's). */
  offer(event: GatewayEvent): boolean {
    this.arrive(event);
    return true;
  }

  /** A source ended. */
  ended(error?: Error): void {
    this.end(error);
  }

  /** A source overflowed. */
  overflowed(): void {
    this.overflow();
  }

  private wanted(event: GatewayEvent): event is T {
    return this.accepts(event);
  }

  private arrive(event: GatewayEvent): void {
    if (this.finished || !this.wanted(event) || this.seen.has(event.eventId)) return;
    this.seen.add(event.eventId);
    if (this.waiting.length === 0 && this.handOver(event)) return;
    this.waiting.push(event);
    if (this.waiting.length > MAX_MERGED_BUFFERED) this.overflow();
  }

  /** Gives one event to the consumer: the pushed sink, or a pending `next()`. */
  private handOver(event: T): boolean {
    if (this.consumer) {
      if (!this.consumer.offer(event)) return false;
    } else if (this.waiter) {
      const waiter = this.waiter;
      this.waiter = undefined;
      waiter.resolve({ value: event, done: false });
    } else return false;
    this.services.onEventDelivered?.(this.field, event);
    return true;
  }

  private overflow(): void {
    if (this.finished) return;
    this.waiting.length = 0;
    for (const listener of this.overflowListeners.splice(0)) notifyOverflow(listener);
    this.connection?.slowConsumer(`${this.field}: event buffer overflowed`);
    this.end(new SlowConsumerError(MAX_MERGED_BUFFERED));
  }

  private end(error?: Error): void {
    if (this.finished) return;
    this.finished = true;
    this.endError = error;
    this.close();
    for (const source of this.sources) void source.return?.();
    this.notifyEnd();
    const waiter = this.waiter;
    this.waiter = undefined;
    if (waiter) {
      if (error) waiter.reject(error);
      else waiter.resolve({ value: undefined, done: true });
    }
  }

  /** `consumer.ended` exactly once, whether the end came before or after `attach`. */
  private notifyEnd(): void {
    if (!this.finished || this.endNotified || !this.consumer) return;
    this.endNotified = true;
    this.consumer.ended(this.endError);
  }

  private close(): void {
    if (this.open) {
      this.open = false;
      this.services.onSubscriptionChange(this.field, -1);
    }
  }

  onOverflow(listener: OverflowListener): void {
    this.overflowListeners.push(listener);
  }

  attach(consumer: Consumer<T>): void {
    this.consumer = consumer;
    this.flush();
    this.notifyEnd();
  }

  flush(): void {
    while (this.waiting.length > 0 && this.handOver(this.waiting[0] as T)) this.waiting.shift();
  }

  async next(): Promise<IteratorResult<T>> {
    const ready = this.waiting.shift();
    if (ready) {
      this.services.onEventDelivered?.(this.field, ready);
      return { value: ready, done: false };
    }
    if (this.finished) {
      if (this.endError) throw this.endError;
      return { value: undefined, done: true };
    }
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
    });
  }

  async return(): Promise<IteratorResult<T>> {
    this.end();
    await Promise.allSettled(this.sources.map(async (source) => source.return?.()));
    return { value: undefined, done: true };
  }

  async throw(error?: unknown): Promise<IteratorResult<T>> {
    await this.return();
    throw error;
  }

  [Symbol.asyncIterator](): this {
    return this;
  }
}

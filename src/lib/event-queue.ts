/**
 * A subscription's event stream: the pub/sub adapters push events in; the socket layer either
 * attaches a consumer that takes them synchronously (the fast path, ../graphql/push-delivery.ts)
 * or pulls them as an async iterator. While the consumer is backed up (the socket's send buffer is full)
 * or nobody pulls, events wait here. `return()` (a client completes, a socket closes) runs
 * `release` exactly once, which is what frees the underlying Redis subscription.
 *
 * Storm protection, per subscription:
 * - **Bounded.** At most `maxBuffered` events wait (held ones included). One more means the
 *   consumer cannot keep up: the stream ends at once (buffer dropped, `release` run, so memory and
 *   the Redis channel are freed), `onOverflow` listeners are told (the socket layer closes the
 *   socket with 1013), and a later `next()` rejects with `SlowConsumerError`.
 * - **Coalescing.** `classify` says which entity an event is about and whether it is state-like
 *   (only the latest matters). The first state-like event of an entity after a quiet window goes
 *   out at once; further ones within `coalesceMs` of the last delivery are held and replaced by
 *   newer ones, and the latest goes out when the window ends (throttle with a trailing edge: no
 *   added latency when quiet, at most one event per entity per window in a storm, the final state
 *   always delivered). "Latest" is by the event's own time (`supersedes`), so an out-of-order
 *   arrival never replaces a newer state. A state-like event still waiting in the buffer is likewise replaced in
 *   place. A non-state-like event about the same entity first releases a held one, so order per
 *   entity is kept; it is never coalesced itself.
 */
import type { Delivery, DispatchLedger, Dispatched } from './dispatch-ledger';
import {
  notifyOverflow,
  SlowConsumerError,
  type Classification,
  type Consumer,
  type EventStream,
  type OverflowListener,
  type QueueOptions,
} from './event-stream';

export * from './event-stream';

/** One event while it waits, and once delivered, its entity's last delivery (`at`) for the window. */
interface Entry<T> {
  value: T;
  readonly entity: string | undefined;
  /** When it went to the consumer (set on delivery). */
  at: number;
}

/** A queue's own record that it delivered nothing of an entity that counts (shared mode). */
const NOTHING_DELIVERED: Delivery<never> = Object.freeze({ value: undefined as never, at: Number.NEGATIVE_INFINITY });

const UNBOUNDED: QueueOptions<never> = { maxBuffered: Number.POSITIVE_INFINITY, coalesceMs: 0 };
const DONE: IteratorResult<never> = Object.freeze({ value: undefined, done: true });

export function createEventQueue<T>(
  release: () => void,
  /** Unbounded and no coalescing when not given. */
  options: QueueOptions<T> = UNBOUNDED as unknown as QueueOptions<T>,
): EventQueue<T> {
  return new EventQueue(release, options);
}

/**
 * One subscription's queue. A class with its state allocated on first use: there is one per live
 * subscription, and a subscriber that keeps up never needs its buffers or coalescing maps, so an
 * idle subscription costs a few fields (the benchmark's heap per socket).
 *
 * Made with a `DispatchLedger` (one topic's queues share it, ../infra/redis/topic-fanout.ts), it
 * takes `pushDispatched` only, and keeps coalescing records only for entities on which it is not
 * in step with its topic (./dispatch-ledger.ts); the decisions are the same as a queue of its own
 * would make (test/unit/dispatch-ledger.test.ts), timed from the dispatch.
 */
export class EventQueue<T> implements EventStream<T> {
  private buffered: Entry<T>[] | undefined;
  private waiting: ((result: IteratorResult<T>) => void)[] | undefined;
  /** State-like entries still in `buffered`, by entity: a newer event replaces them in place. */
  private pending: Map<string, Entry<T>> | undefined;
  /** State-like events held until their entity's window ends. */
  private held: Map<string, { entry: Entry<T>; timer: NodeJS.Timeout }> | undefined;
  /**
   * Each entity's last delivery: when it went to the consumer, and which (pruned once per window).
   * With a ledger, only the entities on which this queue is not in step with its topic.
   */
  private lastSent: Map<string, Delivery<T>> | undefined;
  private lastPrune = 0;
  private done = false;
  private overflowed = false;
  /** Usually one (the socket layer's); an array only when more register. */
  private overflowListeners: OverflowListener | OverflowListener[] | undefined;
  private consumer: Consumer<T> | undefined;
  /** The ledger's count when this queue was made: it received every dispatch after it. */
  private readonly since: number;

  constructor(
    private readonly release: () => void,
    private readonly options: QueueOptions<T>,
    /** The topic's shared ledger, when a fan-out dispatches to this queue (`pushDispatched`). */
    private readonly ledger?: DispatchLedger<T>,
  ) {
    this.since = ledger?.seq ?? 0;
  }

  /** Frees what the stream holds upstream, once (a subclass may do it without a closure). */
  protected released(): void {
    this.release();
  }

  /** This queue is its own iterator (kept for the callers' `queue.iterator`). */
  get iterator(): EventStream<T> {
    return this;
  }

  push(value: T): void {
    if (this.done) return;
    const { options } = this;
    this.receive(value, options.coalesceMs > 0 ? options.classify?.(value) : undefined, undefined, undefined, false);
  }

  /**
   * The fan-out's push, for a queue made with a ledger: `kind` classified and `now` read once for
   * every queue of the topic, `previous` what `DispatchLedger.dispatch` returned for this event.
   */
  pushDispatched(value: T, kind: Classification | undefined, now: number, previous: Dispatched<T> | undefined): void {
    if (this.done) return;
    this.receive(value, kind, now, previous, true);
  }

  /** `dispatched`: through `pushDispatched` (`push` on a queue with a ledger keeps records of its own, as without). */
  private receive(
    value: T,
    kind: Classification | undefined,
    now: number | undefined,
    previous: Dispatched<T> | undefined,
    dispatched: boolean,
  ): void {
    const { options } = this;
    if (!kind) {
      this.enqueue(value, undefined, false, now, previous, dispatched);
      return;
    }
    const { entity } = kind;
    if (!kind.coalesce) {
      // Order per entity: whatever is held for it goes first, and nothing later may overwrite
      // an entry that now precedes this event.
      this.releaseHeld(entity);
      this.pending?.delete(entity);
      this.enqueue(value, entity, false, now, previous, dispatched);
      return;
    }
    const waitingEntry = this.pending?.get(entity) ?? this.held?.get(entity)?.entry;
    if (waitingEntry) {
      waitingEntry.value = options.combine ? options.combine(waitingEntry.value, value) : value;
      // (No record needed for a ledger: the waiting entry makes one when it is delivered.)
      options.onCoalesced?.();
      return;
    }
    const at = now ?? Date.now();
    const last = this.lastDelivery(entity, previous);
    if (last !== undefined && at - last.at < options.coalesceMs) {
      // Older than what the consumer just got (an out-of-order arrival): already superseded.
      if (!(options.supersedes?.(value, last.value) ?? true)) {
        options.onCoalesced?.();
        this.diverge(entity, previous);
        return;
      }
      if (this.waitingCount() >= options.maxBuffered) {
        this.overflow();
        return;
      }
      this.diverge(entity, previous);
      const timer = setTimeout(() => this.releaseHeld(entity), last.at + options.coalesceMs - at);
      timer.unref();
      (this.held ??= new Map()).set(entity, { entry: { value, entity, at: 0 }, timer });
      return;
    }
    this.enqueue(value, entity, true, at, previous, dispatched);
  }

  /** What this queue last delivered of `entity`: its own record, or with a ledger the topic's previous dispatch if it had it. */
  private lastDelivery(entity: string, previous: Dispatched<T> | undefined): Delivery<T> | undefined {
    const own = this.lastSent?.get(entity);
    if (own !== undefined || this.ledger === undefined) return own;
    return previous !== undefined && previous.seq > this.since ? previous : undefined;
  }

  /**
   * With a ledger: this queue did not take its topic's dispatch of `entity` straight through (it
   * waits, is held, or was dropped), so from now on its own record says what it last delivered.
   */
  private diverge(entity: string, previous: Dispatched<T> | undefined): void {
    if (this.ledger === undefined || this.lastSent?.has(entity)) return;
    (this.lastSent ??= new Map()).set(entity, previous !== undefined && previous.seq > this.since ? previous : NOTHING_DELIVERED);
  }
  next(): Promise<IteratorResult<T>> {
    if (this.done) {
      return this.overflowed ? Promise.reject(new SlowConsumerError(this.options.maxBuffered)) : Promise.resolve(DONE);
    }
    const entry = this.buffered?.shift();
    if (entry !== undefined) {
      this.delivered(entry.value, entry.entity, undefined, false, entry);
      return Promise.resolve({ value: entry.value, done: false });
    }
    return new Promise((resolve) => (this.waiting ??= []).push(resolve));
  }

  return(): Promise<IteratorResult<T>> {
    return Promise.resolve(this.finish());
  }

  throw(error?: unknown): Promise<IteratorResult<T>> {
    this.finish();
    // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors -- the iterator protocol: throw(e) rejects with e itself, as a generator's does
    return Promise.reject(error);
  }

  onOverflow(listener: OverflowListener): void {
    if (this.overflowed) notifyOverflow(listener);
    else if (this.done) return;
    else if (this.overflowListeners === undefined) this.overflowListeners = listener;
    else if (Array.isArray(this.overflowListeners)) this.overflowListeners.push(listener);
    else this.overflowListeners = [this.overflowListeners, listener];
  }

  attach(consumer: Consumer<T>): void {
    if (this.done) {
      consumer.ended(this.overflowed ? new SlowConsumerError(this.options.maxBuffered) : undefined);
      return;
    }
    this.consumer = consumer;
    this.flush();
  }

  flush(): void {
    const { buffered } = this;
    while (this.consumer && !this.done && buffered !== undefined && buffered.length > 0) {
      const entry = buffered[0]!;
      if (!this.consumer.offer(entry.value)) return;
      buffered.shift();
      this.delivered(entry.value, entry.entity, undefined, false, entry);
    }
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  private waitingCount(): number {
    return (this.buffered?.length ?? 0) + (this.held?.size ?? 0);
  }

  private finish(): IteratorResult<T> {
    if (!this.done) {
      this.done = true;
      this.buffered = undefined;
      this.pending = undefined;
      if (this.held) for (const { timer } of this.held.values()) clearTimeout(timer);
      this.held = undefined;
      this.lastSent = undefined;
      const waiting = this.waiting;
      this.waiting = undefined;
      if (waiting) for (const resolve of waiting) resolve(DONE);
      this.released();
      this.consumer?.ended(this.overflowed ? new SlowConsumerError(this.options.maxBuffered) : undefined);
    }
    return DONE;
  }

  private overflow(): void {
    this.overflowed = true;
    // The listeners (the connection's slow-consumer end) first: finishing first would end the
    // operation with a per-operation error, and a one-operation HTTP stream would then close as
    // if completed, without SLOW_CONSUMER, its count or its socket's grace-then-destroy.
    const listeners = this.overflowListeners;
    this.overflowListeners = undefined;
    if (Array.isArray(listeners)) for (const listener of listeners) notifyOverflow(listener);
    else if (listeners !== undefined) notifyOverflow(listeners);
    this.finish();
    this.options.onOverflow?.();
  }

  /**
   * `value` went to the consumer. `dispatched`: straight from its topic's dispatch, so a queue with
   * a ledger is in step with it again for the entity (no record of its own, nothing allocated).
   */
  private delivered(value: T, entity: string | undefined, now: number | undefined, dispatched: boolean, entry?: Entry<T>): void {
    if (entity === undefined || this.done) return;
    if (entry !== undefined && this.pending?.get(entity) === entry) this.pending.delete(entity);
    const at = now ?? Date.now();
    if (this.ledger !== undefined && dispatched) {
      if (this.lastSent === undefined) return;
      this.lastSent.delete(entity);
    } else {
      const record = entry ?? { value, entity, at };
      record.at = at;
      (this.lastSent ??= new Map()).set(entity, record);
    }
    if (at - this.lastPrune > this.options.coalesceMs) this.prune(at);
  }

  /**
   * Forgets deliveries older than the window. With a ledger, a record of its own is kept while the
   * topic has a dispatch of the entity this queue did not take straight (falling back to it would
   * count that one as delivered).
   */
  private prune(now: number): void {
    this.lastPrune = now;
    const { lastSent, ledger, options } = this;
    if (lastSent === undefined) return;
    for (const [entity, sent] of lastSent) {
      if (now - sent.at < options.coalesceMs) continue;
      const recent = ledger?.recent(entity, now);
      if (recent === undefined || recent.seq <= this.since) lastSent.delete(entity);
    }
  }

  private enqueue(
    value: T,
    entity: string | undefined,
    coalescible: boolean,
    now: number | undefined,
    previous: Dispatched<T> | undefined,
    dispatched: boolean,
  ): void {
    if (this.consumer) {
      // Straight through unless older events still wait (order) or the consumer is backed up.
      if ((this.buffered === undefined || this.buffered.length === 0) && this.consumer.offer(value)) {
        this.delivered(value, entity, now, dispatched);
        return;
      }
    } else {
      const resolve = this.waiting?.shift();
      if (resolve) {
        this.delivered(value, entity, now, dispatched);
        resolve({ value, done: false });
        return;
      }
    }
    if (this.done) return;
    if (this.waitingCount() >= this.options.maxBuffered) {
      this.overflow();
      return;
    }
    if (entity !== undefined && dispatched) this.diverge(entity, previous);
    const entry: Entry<T> = { value, entity, at: 0 };
    (this.buffered ??= []).push(entry);
    if (coalescible && entity !== undefined) (this.pending ??= new Map()).set(entity, entry);
  }

  private releaseHeld(entity: string): void {
    const hold = this.held?.get(entity);
    if (!hold) return;
    clearTimeout(hold.timer);
    this.held!.delete(entity);
    this.enqueue(hold.entry.value, entity, true, undefined, undefined, false);
  }
}

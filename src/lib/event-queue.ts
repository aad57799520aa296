/**
 * A subscription's event stream: the pub/sub adapters push events in; the socket layer either
 * attaches a sink that takes them synchronously (the fast path, ../graphql/push-delivery.ts) or
 * pulls them as an async iterator. While the sink is backed up (the socket's send buffer is full)
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

export interface QueueOptions<T> {
  /** Events that may wait for the consumer (buffered plus held); more ends the stream. */
  readonly maxBuffered: number;
  /** Coalescing window in milliseconds; 0 disables coalescing. */
  readonly coalesceMs: number;
  /** The entity an event is about and whether it is state-like; undefined: never coalesced. */
  readonly classify?: (value: T) => { readonly entity: string; readonly coalesce: boolean } | undefined;
  /**
   * Whether `next` is newer than `current` (same entity). Events can arrive out of order (broker
   * redeliveries, prefetch): an arrival older than what the consumer was just given is dropped.
   * @default always
   */
  readonly supersedes?: (next: T, current: T) => boolean;
  /**
   * What one waiting event of an entity becomes when another arrives: by default the new one;
   * for partial snapshots, both combined (fields the newer lacks taken from the older).
   */
  readonly combine?: (current: T, next: T) => T;
  /** Called for every event replaced by a newer one, or dropped as older (counted for metrics). */
  readonly onCoalesced?: () => void;
  /** Called once when this stream overflows (counted for metrics). */
  readonly onOverflow?: () => void;
}

/**
 * Where a pushed stream delivers: returns false when the consumer cannot take the value now (its
 * socket is backed up); the value then waits in the stream (bounded and coalesced like any
 * waiting event) until `flush()`.
 */
export type Sink<T> = (value: T) => boolean;

/** A stream of events; `onOverflow` lets the socket layer react to a consumer that fell behind. */
export interface EventStream<T> extends AsyncIterableIterator<T> {
  /** `listener` runs once if (or as soon as, when it already happened) the buffer overflows. */
  onOverflow(listener: () => void): void;
  /**
   * Push instead of pull (the socket layer's fast path): from now on every deliverable event goes
   * to `sink` synchronously, in order, with no promise per event; `onEnd` runs once when the
   * stream ends, with `SlowConsumerError` after an overflow. Not mixed with `next()`.
   */
  attach(sink: Sink<T>, onEnd: (error?: Error) => void): void;
  /** Offers the waiting events to the sink again (the socket drained). */
  flush(): void;
}

/** The consumer did not keep up: its buffer overflowed and the stream ended. */
export class SlowConsumerError extends Error {
  constructor(maxBuffered: number) {
    super(`Too slow: more than ${maxBuffered} events waiting for this subscription`);
    this.name = 'SlowConsumerError';
  }
}

interface Entry<T> {
  value: T;
  readonly entity?: string;
}

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
 */
export class EventQueue<T> implements EventStream<T> {
  private buffered: Entry<T>[] | undefined;
  private waiting: ((result: IteratorResult<T>) => void)[] | undefined;
  /** State-like entries still in `buffered`, by entity: a newer event replaces them in place. */
  private pending: Map<string, Entry<T>> | undefined;
  /** State-like events held until their entity's window ends. */
  private held: Map<string, { entry: Entry<T>; timer: NodeJS.Timeout }> | undefined;
  /** When each entity's last event went to the consumer, and which (pruned once per window). */
  private lastSent: Map<string, { at: number; value: T }> | undefined;
  private lastPrune = 0;
  private done = false;
  private overflowed = false;
  /** Usually one (the socket layer's); an array only when more register. */
  private overflowListeners: (() => void) | (() => void)[] | undefined;
  private sink: Sink<T> | undefined;
  private onEnd: ((error?: Error) => void) | undefined;

  constructor(
    private readonly release: () => void,
    private readonly options: QueueOptions<T>,
  ) {}

  /** This queue is its own iterator (kept for the callers' `queue.iterator`). */
  get iterator(): EventStream<T> {
    return this;
  }

  push(value: T): void {
    if (this.done) return;
    const { options } = this;
    const kind = options.coalesceMs > 0 ? options.classify?.(value) : undefined;
    if (!kind) {
      this.enqueue({ value }, false);
      return;
    }
    const { entity } = kind;
    if (!kind.coalesce) {
      // Order per entity: whatever is held for it goes first, and nothing later may overwrite
      // an entry that now precedes this event.
      this.releaseHeld(entity);
      this.pending?.delete(entity);
      this.enqueue({ value }, false);
      return;
    }
    const waitingEntry = this.pending?.get(entity) ?? this.held?.get(entity)?.entry;
    if (waitingEntry) {
      waitingEntry.value = options.combine ? options.combine(waitingEntry.value, value) : value;
      options.onCoalesced?.();
      return;
    }
    const entry: Entry<T> = { value, entity };
    const last = this.lastSent?.get(entity);
    const now = Date.now();
    if (last !== undefined && now - last.at < options.coalesceMs) {
      // Older than what the consumer just got (an out-of-order arrival): already superseded.
      if (!(options.supersedes?.(value, last.value) ?? true)) {
        options.onCoalesced?.();
        return;
      }
      if (this.waitingCount() >= options.maxBuffered) {
        this.overflow();
        return;
      }
      const timer = setTimeout(() => this.releaseHeld(entity), last.at + options.coalesceMs - now);
      timer.unref();
      (this.held ??= new Map()).set(entity, { entry, timer });
      return;
    }
    this.enqueue(entry, true);
  }

  next(): Promise<IteratorResult<T>> {
    if (this.done) {
      return this.overflowed ? Promise.reject(new SlowConsumerError(this.options.maxBuffered)) : Promise.resolve(DONE);
    }
    const entry = this.buffered?.shift();
    if (entry !== undefined) {
      this.delivered(entry);
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

  onOverflow(listener: () => void): void {
    if (this.overflowed) listener();
    else if (this.done) return;
    else if (this.overflowListeners === undefined) this.overflowListeners = listener;
    else if (Array.isArray(this.overflowListeners)) this.overflowListeners.push(listener);
    else this.overflowListeners = [this.overflowListeners, listener];
  }

  attach(sink: Sink<T>, onEnd: (error?: Error) => void): void {
    if (this.done) {
      onEnd(this.overflowed ? new SlowConsumerError(this.options.maxBuffered) : undefined);
      return;
    }
    this.sink = sink;
    this.onEnd = onEnd;
    this.flush();
  }

  flush(): void {
    const { buffered } = this;
    while (this.sink && !this.done && buffered !== undefined && buffered.length > 0) {
      const entry = buffered[0]!;
      if (!this.sink(entry.value)) return;
      buffered.shift();
      this.delivered(entry);
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
      this.release();
      this.onEnd?.(this.overflowed ? new SlowConsumerError(this.options.maxBuffered) : undefined);
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
    if (Array.isArray(listeners)) for (const listener of listeners) listener();
    else listeners?.();
    this.finish();
    this.options.onOverflow?.();
  }

  private delivered(entry: Entry<T>): void {
    if (entry.entity === undefined || this.done) return;
    if (this.pending?.get(entry.entity) === entry) this.pending.delete(entry.entity);
    const now = Date.now();
    const lastSent = (this.lastSent ??= new Map<string, { at: number; value: T }>());
    lastSent.set(entry.entity, { at: now, value: entry.value });
    if (now - this.lastPrune > this.options.coalesceMs) {
      this.lastPrune = now;
      for (const [entity, sent] of lastSent) if (now - sent.at >= this.options.coalesceMs) lastSent.delete(entity);
    }
  }

  private enqueue(entry: Entry<T>, coalescible: boolean): void {
    if (this.sink) {
      // Straight through unless older events still wait (order) or the consumer is backed up.
      if ((this.buffered === undefined || this.buffered.length === 0) && this.sink(entry.value)) {
        this.delivered(entry);
        return;
      }
    } else {
      const resolve = this.waiting?.shift();
      if (resolve) {
        this.delivered(entry);
        resolve({ value: entry.value, done: false });
        return;
      }
    }
    if (this.done) return;
    if (this.waitingCount() >= this.options.maxBuffered) {
      this.overflow();
      return;
    }
    (this.buffered ??= []).push(entry);
    if (coalescible && entry.entity !== undefined) (this.pending ??= new Map()).set(entry.entity, entry);
  }

  private releaseHeld(entity: string): void {
    const hold = this.held?.get(entity);
    if (!hold) return;
    clearTimeout(hold.timer);
    this.held!.delete(entity);
    this.enqueue(hold.entry, true);
  }
}

/**
 * A subscription's event stream: the pub/sub adapters push events in; the socket layer either
 * attaches a sink that takes them synchronously (the fast path, ../infra/ws/push-delivery.ts) or
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

export function createEventQueue<T>(
  release: () => void,
  /** Unbounded and no coalescing when not given. */
  options: QueueOptions<T> = { maxBuffered: Number.POSITIVE_INFINITY, coalesceMs: 0 },
): {
  push(value: T): void;
  iterator: EventStream<T>;
} {
  const { maxBuffered, coalesceMs, classify } = options;
  const buffered: Entry<T>[] = [];
  const waiting: ((result: IteratorResult<T>) => void)[] = [];
  /** State-like entries still in `buffered`, by entity: a newer event replaces them in place. */
  const pending = new Map<string, Entry<T>>();
  /** State-like events held until their entity's window ends. */
  const held = new Map<string, { entry: Entry<T>; timer: NodeJS.Timeout }>();
  /** When each entity's last event went to the consumer, and which (pruned once per window). */
  const lastSent = new Map<string, { at: number; value: T }>();
  let lastPrune = 0;
  let done = false;
  let overflowed = false;
  const overflowListeners: (() => void)[] = [];
  let sink: Sink<T> | undefined;
  let onEnd: ((error?: Error) => void) | undefined;

  const finish = (): IteratorResult<T> => {
    if (!done) {
      done = true;
      buffered.length = 0;
      pending.clear();
      for (const { timer } of held.values()) clearTimeout(timer);
      held.clear();
      lastSent.clear();
      for (const resolve of waiting.splice(0)) resolve({ value: undefined, done: true });
      release();
      onEnd?.(overflowed ? new SlowConsumerError(maxBuffered) : undefined);
    }
    return { value: undefined, done: true };
  };

  const overflow = () => {
    overflowed = true;
    finish();
    options.onOverflow?.();
    for (const listener of overflowListeners.splice(0)) listener();
  };

  const delivered = (entry: Entry<T>) => {
    if (entry.entity === undefined) return;
    if (pending.get(entry.entity) === entry) pending.delete(entry.entity);
    const now = Date.now();
    lastSent.set(entry.entity, { at: now, value: entry.value });
    if (now - lastPrune > coalesceMs) {
      lastPrune = now;
      for (const [entity, sent] of lastSent) if (now - sent.at >= coalesceMs) lastSent.delete(entity);
    }
  };

  const enqueue = (entry: Entry<T>, coalescible: boolean) => {
    if (sink) {
      // Straight through unless older events still wait (order) or the consumer is backed up.
      if (buffered.length === 0 && sink(entry.value)) {
        delivered(entry);
        return;
      }
    } else {
      const resolve = waiting.shift();
      if (resolve) {
        delivered(entry);
        resolve({ value: entry.value, done: false });
        return;
      }
    }
    if (buffered.length + held.size >= maxBuffered) {
      overflow();
      return;
    }
    buffered.push(entry);
    if (coalescible && entry.entity !== undefined) pending.set(entry.entity, entry);
  };

  const releaseHeld = (entity: string) => {
    const hold = held.get(entity);
    if (!hold) return;
    clearTimeout(hold.timer);
    held.delete(entity);
    enqueue(hold.entry, true);
  };

  const iterator: EventStream<T> = {
    next() {
      if (done) {
        return overflowed ? Promise.reject(new SlowConsumerError(maxBuffered)) : Promise.resolve({ value: undefined, done: true });
      }
      const entry = buffered.shift();
      if (entry !== undefined) {
        delivered(entry);
        return Promise.resolve({ value: entry.value, done: false });
      }
      return new Promise((resolve) => waiting.push(resolve));
    },
    return() {
      return Promise.resolve(finish());
    },
    throw(error?: unknown) {
      finish();
      return Promise.reject(error);
    },
    onOverflow(listener) {
      if (overflowed) listener();
      else if (!done) overflowListeners.push(listener);
    },
    attach(target, end) {
      if (done) {
        end(overflowed ? new SlowConsumerError(maxBuffered) : undefined);
        return;
      }
      sink = target;
      onEnd = end;
      iterator.flush();
    },
    flush() {
      while (sink && !done && buffered.length > 0) {
        const entry = buffered[0]!;
        if (!sink(entry.value)) return;
        buffered.shift();
        delivered(entry);
      }
    },
    [Symbol.asyncIterator]() {
      return this;
    },
  };

  return {
    push(value: T) {
      if (done) return;
      const kind = coalesceMs > 0 ? classify?.(value) : undefined;
      if (!kind) {
        enqueue({ value }, false);
        return;
      }
      const { entity } = kind;
      if (!kind.coalesce) {
        // Order per entity: whatever is held for it goes first, and nothing later may overwrite
        // an entry that now precedes this event.
        releaseHeld(entity);
        pending.delete(entity);
        enqueue({ value }, false);
        return;
      }
      const waitingEntry = pending.get(entity) ?? held.get(entity)?.entry;
      if (waitingEntry) {
        waitingEntry.value = options.combine ? options.combine(waitingEntry.value, value) : value;
        options.onCoalesced?.();
        return;
      }
      const entry: Entry<T> = { value, entity };
      const last = lastSent.get(entity);
      const now = Date.now();
      if (last !== undefined && now - last.at < coalesceMs) {
        // Older than what the consumer just got (an out-of-order arrival): already superseded.
        if (!(options.supersedes?.(value, last.value) ?? true)) {
          options.onCoalesced?.();
          return;
        }
        if (buffered.length + held.size >= maxBuffered) {
          overflow();
          return;
        }
        const timer = setTimeout(() => releaseHeld(entity), last.at + coalesceMs - now);
        timer.unref();
        held.set(entity, { entry, timer });
        return;
      }
      enqueue(entry, true);
    },
    iterator,
  };
}

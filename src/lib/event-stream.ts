/**
 * What a subscription's event stream is to its readers (./event-queue.ts implements it; the
 * domains' guarded and merged streams wrap it): pulled as an async iterator, or pushed to a
 * `Consumer` (the socket layer's fast path), bounded, and telling when it overflowed.
 */

export interface QueueOptions<T> {
  /** Events that may wait for the consumer (buffered plus held); more ends the stream. */
  readonly maxBuffered: number;
  /** Coalescing window in milliseconds; 0 disables coalescing. */
  readonly coalesceMs: number;
  /** The entity an event is about and whether it is state-like; undefined: never coalesced. */
  readonly classify?: (value: T) => Classification | undefined;
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
 * Where a pushed stream delivers (the socket layer's fast path). An object with methods rather
 * than two callbacks: there is one per live subscription, and closures would cost a function and
 * its context each (heap per socket, docs/decisions/0605).
 */
export interface Consumer<T> {
  /**
   * Takes one event now, or returns false when it cannot (its socket is backed up): the value then
   * waits in the stream (bounded and coalesced like any waiting event) until `flush()`.
   */
  offer(value: T): boolean;
  /** The stream ended, once: `return()`, or `SlowConsumerError` after an overflow. */
  ended(error?: Error): void;
}

/** Told once when a stream's buffer overflows: a function, or an object (no closure per subscription). */
export type OverflowListener = (() => void) | { overflowed(): void };

/** A stream of events; `onOverflow` lets the socket layer react to a consumer that fell behind. */
export interface EventStream<T> extends AsyncIterableIterator<T> {
  /** `listener` runs once if (or as soon as, when it already happened) the buffer overflows. */
  onOverflow(listener: OverflowListener): void;
  /**
   * Push instead of pull (the socket layer's fast path): from now on every deliverable event goes
   * to `consumer.offer` synchronously, in order, with no promise per event; `consumer.ended` runs
   * once when the stream ends, with `SlowConsumerError` after an overflow. Not mixed with `next()`.
   */
  attach(consumer: Consumer<T>): void;
  /** Offers the waiting events to the consumer again (the socket drained). */
  flush(): void;
}

/** The consumer did not keep up: its buffer overflowed and the stream ended. */
export class SlowConsumerError extends Error {
  constructor(maxBuffered: number) {
    super(`Too slow: more than ${maxBuffered} events waiting for this subscription`);
    this.name = 'SlowConsumerError';
  }
}

/** What `classify` says of an event. */
export type Classification = { readonly entity: string; readonly coalesce: boolean };

/** Runs the listener: a function, or an object's `overflowed`. */
export function notifyOverflow(listener: OverflowListener): void {
  if (typeof listener === 'function') listener();
  else listener.overflowed();
}

/**
 * One topic's coalescing history, shared by every queue the topic feeds on this instance
 * (docs/decisions/0605-delivery-frames-and-socket-memory.md).
 *
 * Coalescing (./event-queue.ts) decides per subscription from when each entity's last event went
 * to that consumer. Kept per queue, that record was an object and a map entry per delivery, kept
 * for the window: in a fan-out every event made one per socket, which lived long enough to be
 * promoted, and the gateway spent more in the garbage collector than in its own code. Yet every
 * queue that keeps up delivers each event of its topic the moment it is dispatched: what it last
 * delivered of an entity is what the topic last dispatched of it. So the topic records that once
 * per event here, and a queue keeps records of its own only for entities on which it differs (it
 * held, buffered or dropped one; see `EventQueue.pushDispatched`).
 *
 * A queue only counts dispatches made after it was created (`seq`, compared with the ledger's
 * count when the queue was made). Records older than the window are pruned: no decision looks
 * further back.
 */

/** An entity's last event that went to a consumer, and when (ms since the epoch). */
export interface Delivery<T> {
  readonly value: T;
  readonly at: number;
}

/** A topic's dispatch of one entity's event: its place in the topic's sequence too. */
export interface Dispatched<T> extends Delivery<T> {
  readonly seq: number;
}

export class DispatchLedger<T> {
  private count = 0;
  private readonly last = new Map<string, Dispatched<T>>();
  private lastPrune = 0;

  constructor(private readonly windowMs: number) {}

  /** Dispatches so far: a queue created now counts only the ones after it. */
  get seq(): number {
    return this.count;
  }

  /**
   * Records the dispatch of `value` (about `entity`, undefined: none) at `now`; returns the
   * entity's previous dispatch within the window, which the queues decide from.
   */
  dispatch(entity: string | undefined, value: T, now: number): Dispatched<T> | undefined {
    const seq = ++this.count;
    if (entity === undefined) return undefined;
    const previous = this.recent(entity, now);
    this.last.set(entity, { value, at: now, seq });
    if (now - this.lastPrune > this.windowMs) {
      this.lastPrune = now;
      for (const [key, record] of this.last) if (now - record.at >= this.windowMs) this.last.delete(key);
    }
    return previous;
  }

  /** The entity's last dispatch, if within the window at `now`. */
  recent(entity: string, now: number): Dispatched<T> | undefined {
    const record = this.last.get(entity);
    return record !== undefined && now - record.at < this.windowMs ? record : undefined;
  }
}

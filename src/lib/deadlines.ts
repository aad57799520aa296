/**
 * Many deadlines on one timer: a binary min-heap of items by due time, and a single `setTimeout`
 * for the earliest. Each connection's token expiry used to be a timer of its own (a `Timeout`, a
 * closure and its context: ≈250 bytes per socket, docs/decisions/0605); here an item costs one
 * slot in two arrays and a number on itself (`deadlineSlot`, its place in the heap, so that
 * moving or cancelling it is O(log n) without a map).
 *
 * An item is due once `now() >= at`; `onDue` runs after it left the heap (so it may schedule it
 * again). A timer that fires early (Node's timers and `Date.now()` round differently) re-arms for
 * the rest. Delays past `setTimeout`'s ceiling (~24.8 days) are reached in steps. The timer is
 * `unref`'d: deadlines never keep a process alive.
 */

/** What `Deadlines` keeps on an item: its heap slot, -1 while it is not scheduled. */
export interface Scheduled {
  deadlineSlot: number;
}

/** setTimeout's ceiling. */
const MAX_TIMER_MS = 2_147_483_647;

export class Deadlines<T extends Scheduled> {
  private readonly items: T[] = [];
  /** Due times, by slot (a plain array of numbers: stored unboxed). */
  private readonly times: number[] = [];
  private timer: NodeJS.Timeout | undefined;
  /** When the armed timer is due (Infinity: none armed). */
  private armedAt = Number.POSITIVE_INFINITY;

  constructor(
    private readonly onDue: (item: T) => void,
    private readonly now: () => number = Date.now,
  ) {}

  /** Items scheduled now. */
  get size(): number {
    return this.items.length;
  }

  /** Schedules `item` at `at` (ms since the epoch), or moves it there if it was scheduled. */
  schedule(item: T, at: number): void {
    if (item.deadlineSlot >= 0) {
      const slot = item.deadlineSlot;
      const before = this.times[slot]!;
      this.times[slot] = at;
      if (at < before) this.up(slot);
      else this.down(slot);
    } else {
      const slot = this.items.length;
      this.items.push(item);
      this.times.push(at);
      item.deadlineSlot = slot;
      this.up(slot);
    }
    this.arm();
  }

  /** Unschedules `item`; nothing if it was not scheduled. */
  cancel(item: T): void {
    const slot = item.deadlineSlot;
    if (slot < 0) return;
    this.removeAt(slot);
    if (this.items.length === 0) this.disarm();
  }

  private removeAt(slot: number): void {
    const { items, times } = this;
    const removed = items[slot]!;
    removed.deadlineSlot = -1;
    const lastSlot = items.length - 1;
    const last = items.pop()!;
    const lastAt = times.pop()!;
    if (slot === lastSlot) return;
    items[slot] = last;
    times[slot] = lastAt;
    last.deadlineSlot = slot;
    this.up(slot);
    this.down(last.deadlineSlot);
  }

  private fire(): void {
    this.timer = undefined;
    this.armedAt = Number.POSITIVE_INFINITY;
    const now = this.now();
    // Bounded: each pass removes one item.
    while (this.items.length > 0 && this.times[0]! <= now) {
      const item = this.items[0]!;
      this.removeAt(0);
      this.onDue(item);
    }
    this.arm();
  }

  /**
   * Arms the timer for the earliest item, unless it is armed for that time or earlier already (a
   * timer armed for an item since cancelled or moved later finds nothing due and re-arms).
   */
  private arm(): void {
    if (this.items.length === 0) return;
    const at = this.times[0]!;
    if (this.timer !== undefined && at >= this.armedAt) return;
    this.disarm();
    this.armedAt = at;
    this.timer = setTimeout(() => this.fire(), Math.max(0, Math.min(at - this.now(), MAX_TIMER_MS)));
    this.timer.unref();
  }

  private disarm(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.armedAt = Number.POSITIVE_INFINITY;
  }

  private up(slot: number): void {
    const { items, times } = this;
    const item = items[slot]!;
    const at = times[slot]!;
    while (slot > 0) {
      const parent = (slot - 1) >> 1;
      if (times[parent]! <= at) break;
      items[slot] = items[parent]!;
      times[slot] = times[parent]!;
      items[slot]!.deadlineSlot = slot;
      slot = parent;
    }
    items[slot] = item;
    times[slot] = at;
    item.deadlineSlot = slot;
  }

  private down(slot: number): void {
    const { items, times } = this;
    const count = items.length;
    const item = items[slot]!;
    const at = times[slot]!;
    for (;;) {
      const left = 2 * slot + 1;
      if (left >= count) break;
      const right = left + 1;
      const child = right < count && times[right]! < times[left]! ? right : left;
      if (times[child]! >= at) break;
      items[slot] = items[child]!;
      times[slot] = times[child]!;
      items[slot]!.deadlineSlot = slot;
      slot = child;
    }
    items[slot] = item;
    times[slot] = at;
    item.deadlineSlot = slot;
  }
}

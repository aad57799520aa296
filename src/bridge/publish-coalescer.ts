/**
 * The bridge's publishes of one turn of the event loop, in one `publishMany`.
 *
 * A read-model batch resolves every event it applied in the same turn, so the runs (one per user)
 * waiting on it all reach their publish together; each run's events are appended here in order and
 * the whole lot goes to the fan-out in one call (one Redis round trip, one script) once the turn
 * is over. Each caller's events stay in its order, which is all ordering asks for: different
 * users' events are independent. A failed call fails every caller of it, each then retrying its
 * own events from the first (`publishMany` publishes nothing after a failed event, and a repeat
 * of one published before it is a duplicate clients drop by `eventId`).
 */
import type { EventPubSub, PublishItem } from '../contracts/ports';

/** Events per `publishMany` call at the most; more wait for the next one, in order. */
export const MAX_PUBLISH_BATCH = 500;

interface Waiter {
  readonly items: readonly PublishItem[];
  readonly resolve: () => void;
  readonly reject: (error: unknown) => void;
}

export class PublishCoalescer {
  private waiting: Waiter[] = [];
  private scheduled = false;

  constructor(private readonly pubsub: Pick<EventPubSub, 'publishMany'>) {}

  /** Resolves once every item is published; rejects when any of this call's batch failed. */
  publish(items: readonly PublishItem[]): Promise<void> {
    if (items.length === 0) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      this.waiting.push({ items, resolve, reject });
      if (this.scheduled) return;
      this.scheduled = true;
      setImmediate(() => this.flush());
    });
  }

  private flush(): void {
    this.scheduled = false;
    const waiters = this.waiting;
    this.waiting = [];
    // Split into calls of at most MAX_PUBLISH_BATCH events, whole callers each (a caller's own
    // events larger than that go alone), so a caller never spans two calls.
    const groups: Waiter[][] = [];
    let group: Waiter[] = [];
    let size = 0;
    for (const waiter of waiters) {
      if (group.length > 0 && size + waiter.items.length > MAX_PUBLISH_BATCH) {
        groups.push(group);
        group = [];
        size = 0;
      }
      group.push(waiter);
      size += waiter.items.length;
    }
    if (group.length > 0) groups.push(group);
    for (const members of groups) {
      const items = members.length === 1 ? (members[0] as Waiter).items : members.flatMap((waiter) => waiter.items);
      // Calls need no order between them: a caller (one user's run) has one publish at a time.
      this.pubsub.publishMany(items).then(
        () => {
          for (const waiter of members) waiter.resolve();
        },
        (error: unknown) => {
          for (const waiter of members) waiter.reject(error);
        },
      );
    }
  }
}

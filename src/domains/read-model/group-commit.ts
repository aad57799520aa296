/**
 * The read model's group commit (docs/decisions/0004, 0600): one batch at a time, made of what is
 * waiting. No timer ever holds an item to fill a batch: from idle, a batch starts after the rest
 * of the current turn of the event loop (one `setImmediate`: the messages of one socket read, or
 * the events of one broker batch applied in the same tick, go together); while a batch runs,
 * what arrives waits for it and forms the next, which starts the moment it ends. So an item waits
 * at most one turn of the event loop plus the batch ahead of it, and a batch holds at most
 * `MAX_BATCH` items.
 */

/** Items in one batch at the most. */
export const MAX_BATCH = 500;

interface Pending<T, R> {
  readonly item: T;
  readonly resolve: (result: R) => void;
  readonly reject: (error: unknown) => void;
}

/**
 * Runs the items one batch after another, in arrival order: the items that arrive while a batch
 * runs form the next one, and each batch's items resolve in arrival order when it is done. A
 * failed batch is retried item by item, so one bad item fails alone; while the database is
 * unavailable the rest of the batch fails at once instead (trying 500 items one by one against a
 * database that times out would hold every user for 500 timeouts).
 */
export class GroupCommit<T, R> {
  private readonly waiting: Pending<T, R>[] = [];
  private running = false;

  constructor(
    private readonly deps: {
      /** One result per item, in order. */
      readonly runBatch: (items: T[]) => Promise<R[]>;
      readonly runOne: (item: T) => Promise<R>;
      /** Whether an error says nothing can be done now (the database is unavailable), not that an item is bad. */
      readonly unavailable: (error: unknown) => boolean;
      /** @default MAX_BATCH */
      readonly maxBatch?: number;
    },
  ) {}

  add(item: T): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.waiting.push({ item, resolve, reject });
      if (this.running) return;
      this.running = true;
      // From idle, wait for the rest of this turn of the event loop: the messages of one socket
      // read arrive together and should share a transaction.
      setImmediate(() => void this.drain());
    });
  }

  private async drain(): Promise<void> {
    const max = this.deps.maxBatch ?? MAX_BATCH;
    while (this.waiting.length > 0) {
      const batch = this.waiting.splice(0, max);
      try {
        const results = await this.deps.runBatch(batch.map((p) => p.item));
        for (const [i, p] of batch.entries()) p.resolve(results[i]!);
      } catch (error) {
        if (batch.length === 1 || this.deps.unavailable(error)) {
          for (const p of batch) p.reject(error);
          continue;
        }
        await this.oneByOne(batch);
      }
    }
    this.running = false;
  }

  private async oneByOne(batch: readonly Pending<T, R>[]): Promise<void> {
    for (const [i, p] of batch.entries()) {
      try {
        p.resolve(await this.deps.runOne(p.item));
      } catch (error) {
        if (!this.deps.unavailable(error)) {
          p.reject(error);
          continue;
        }
        for (const rest of batch.slice(i)) rest.reject(error);
        return;
      }
    }
  }
}

/**
 * The group commit (src/domains/read-model/group-commit.ts): a batch is what is waiting, never
 * held by a timer to fill; items that arrive while a batch runs form the next, which starts as
 * soon as it ends; batches are bounded; results resolve in arrival order; a failed batch is
 * retried item by item unless the database is unavailable, then everything left fails at once.
 */
import { GroupCommit } from '../../src/domains/read-model/group-commit';

interface Deferred {
  readonly promise: Promise<void>;
  resolve(): void;
}

function deferred(): Deferred {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

const unavailable = (error: unknown) => error instanceof Error && error.message === 'down';

function setup(options: { maxBatch?: number; fail?: (items: number[]) => Error | undefined } = {}) {
  const batches: number[][] = [];
  const gates: Deferred[] = [];
  const one: number[] = [];
  let hold = false;
  const commit = new GroupCommit<number, string>({
    runBatch: async (items) => {
      batches.push(items);
      if (hold) {
        const gate = deferred();
        gates.push(gate);
        await gate.promise;
      }
      const error = options.fail?.(items);
      if (error) throw error;
      return items.map((item) => `r${item}`);
    },
    runOne: async (item) => {
      one.push(item);
      const error = options.fail?.([item]);
      if (error) throw error;
      return `one${item}`;
    },
    unavailable,
    maxBatch: options.maxBatch,
  });
  return { commit, batches, gates, one, holdBatches: (on: boolean) => (hold = on) };
}

/** Until the batch runner has been called `n` times (bounded: the runner is called at most once per turn). */
async function batchesRun(batches: readonly unknown[], n: number): Promise<void> {
  for (let turn = 0; batches.length < n && turn < 100; turn++) await new Promise((resolve) => setImmediate(resolve));
  expect(batches.length).toBe(n);
}

it('puts what was added in one turn of the event loop in one batch, results in order, without a timer', async () => {
  jest.useFakeTimers({ doNotFake: ['setImmediate', 'nextTick', 'queueMicrotask'] });
  try {
    const { commit, batches } = setup();
    const results = Promise.all([1, 2, 3, 4].map((n) => commit.add(n)));
    expect(batches).toEqual([]);
    // No timer is involved: with timers frozen, the batch still runs after one turn.
    expect(await results).toEqual(['r1', 'r2', 'r3', 'r4']);
    expect(batches).toEqual([[1, 2, 3, 4]]);
    expect(jest.getTimerCount()).toBe(0);
  } finally {
    jest.useRealTimers();
  }
});

it('forms the next batch of what arrived while one ran, and starts it as soon as that one ends', async () => {
  const { commit, batches, gates, holdBatches } = setup();
  holdBatches(true);
  const first = Promise.all([1, 2].map((n) => commit.add(n)));
  await batchesRun(batches, 1);
  const second = Promise.all([3, 4, 5].map((n) => commit.add(n)));
  // Still one batch: the second waits for the first, it is not run beside it.
  await new Promise((resolve) => setImmediate(resolve));
  expect(batches).toEqual([[1, 2]]);
  holdBatches(false);
  gates[0]!.resolve();
  expect(await first).toEqual(['r1', 'r2']);
  expect(await second).toEqual(['r3', 'r4', 'r5']);
  expect(batches).toEqual([
    [1, 2],
    [3, 4, 5],
  ]);
});

it('bounds a batch by maxBatch', async () => {
  const { commit, batches } = setup({ maxBatch: 3 });
  expect(await Promise.all([1, 2, 3, 4, 5, 6, 7].map((n) => commit.add(n)))).toEqual(['r1', 'r2', 'r3', 'r4', 'r5', 'r6', 'r7']);
  expect(batches).toEqual([[1, 2, 3], [4, 5, 6], [7]]);
});

it('retries a failed batch item by item: only the bad item fails', async () => {
  const { commit, one } = setup({ fail: (items) => (items.includes(3) ? new Error('bad item') : undefined) });
  const outcomes = await Promise.allSettled([1, 2, 3, 4].map((n) => commit.add(n)));
  expect(outcomes.map((o) => (o.status === 'fulfilled' ? o.value : (o.reason as Error).message))).toEqual([
    'one1',
    'one2',
    'bad item',
    'one4',
  ]);
  expect(one).toEqual([1, 2, 3, 4]);
});

it('fails a whole batch at once while the database is unavailable, and what is left of a retry', async () => {
  const down = setup({ fail: () => new Error('down') });
  const outcomes = await Promise.allSettled([1, 2, 3].map((n) => down.commit.add(n)));
  expect(outcomes.map((o) => o.status)).toEqual(['rejected', 'rejected', 'rejected']);
  expect(down.one).toEqual([]);

  // The batch fails for a bad item; during the retry the database goes away at item 2.
  let gone = false;
  const midway = setup({
    fail: (items) => {
      if (items.length > 1) return new Error('bad item');
      if (items[0] === 2) gone = true;
      return gone ? new Error('down') : undefined;
    },
  });
  const settled = await Promise.allSettled([1, 2, 3, 4].map((n) => midway.commit.add(n)));
  expect(settled.map((o) => (o.status === 'fulfilled' ? o.value : (o.reason as Error).message))).toEqual(['one1', 'down', 'down', 'down']);
  expect(midway.one).toEqual([1, 2]);
});

/**
 * Everything a helper opens is registered here the moment it exists (graphql-ws tservers'
 * `leftovers`), and closed after the file's own `afterAll` hooks by the test environment
 * (test/jest/environment.js), newest first, even when a `beforeAll` failed half way and its
 * variables were never assigned. Closing something explicitly untracks it; closing twice is a
 * no-op. A close that fails or takes longer than `CLOSE_BOUND_MS` fails the file with its name,
 * instead of leaving jest waiting on an open handle.
 */

export interface Tracked {
  /** Closes it now (once) and forgets it. */
  close(): Promise<void>;
  /** Forgets it without closing (it was closed another way). */
  untrack(): void;
}

const CLOSE_BOUND_MS = 15_000;
/** Shared with the environment through the test context's global (one per test file). */
const DISPOSE = Symbol.for('cloudphone-realtime.test.disposeLeftovers');

interface Leftover {
  readonly what: string;
  readonly close: () => Promise<void>;
}

const leftovers: Leftover[] = [];

/** Registers `close` for `what`; call it right after the thing is created, before awaiting anything. */
export function track(what: string, close: () => unknown): Tracked {
  let closing: Promise<void> | undefined;
  const leftover: Leftover = {
    what,
    close: () => (closing ??= (async () => void (await close()))()),
  };
  leftovers.push(leftover);
  const untrack = () => {
    const index = leftovers.indexOf(leftover);
    if (index >= 0) leftovers.splice(index, 1);
  };
  return {
    untrack,
    close() {
      untrack();
      return leftover.close();
    },
  };
}

/** What is still open, oldest first (for messages). */
export function openLeftovers(): string[] {
  return leftovers.map((l) => l.what);
}

/** Closes everything still registered, newest first; resolves with the failures, never rejects. */
export async function disposeLeftovers(boundMs = CLOSE_BOUND_MS): Promise<Error[]> {
  const errors: Error[] = [];
  for (let guard = 0; leftovers.length > 0 && guard < 10_000; guard++) {
    const leftover = leftovers.pop() as Leftover;
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        leftover.close(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`did not close within ${boundMs} ms`)), boundMs);
        }),
      ]);
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      errors.push(new Error(`teardown: ${leftover.what}: ${reason}`));
    } finally {
      clearTimeout(timer);
    }
  }
  return errors;
}

(globalThis as Record<symbol, unknown>)[DISPOSE] = disposeLeftovers;

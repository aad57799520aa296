/**
 * A push-to-pull async iterator: the pub/sub adapters push events in, graphql-ws pulls them out.
 * `return()` (called by graphql-ws when a client completes or a socket closes) runs `release`
 * exactly once, which is what frees the underlying Redis subscription.
 */
export function createEventQueue<T>(release: () => void): {
  push(value: T): void;
  iterator: AsyncIterableIterator<T>;
} {
  const buffered: T[] = [];
  const waiting: ((result: IteratorResult<T>) => void)[] = [];
  let done = false;

  const finish = (): IteratorResult<T> => {
    if (!done) {
      done = true;
      buffered.length = 0;
      for (const resolve of waiting.splice(0)) resolve({ value: undefined, done: true });
      release();
    }
    return { value: undefined, done: true };
  };

  const iterator: AsyncIterableIterator<T> = {
    next() {
      if (done) return Promise.resolve({ value: undefined, done: true });
      const value = buffered.shift();
      if (value !== undefined) return Promise.resolve({ value, done: false });
      return new Promise((resolve) => waiting.push(resolve));
    },
    return() {
      return Promise.resolve(finish());
    },
    throw(error?: unknown) {
      finish();
      return Promise.reject(error);
    },
    [Symbol.asyncIterator]() {
      return this;
    },
  };

  return {
    push(value: T) {
      if (done) return;
      const resolve = waiting.shift();
      if (resolve) resolve({ value, done: false });
      else buffered.push(value);
    },
    iterator,
  };
}

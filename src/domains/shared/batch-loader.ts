/**
 * A per-request batch loader (the DataLoader idea, in a few lines): every `load(key)` made in the
 * same tick is answered by one `batch(keys)` call. Loaders live per GraphQL context (one HTTP
 * request or one WebSocket operation), so nothing is cached across requests or users.
 */
export class BatchLoader<K, V> {
  private queue: { key: K; resolve: (value: V) => void; reject: (error: unknown) => void }[] = [];
  private readonly cache = new Map<K, Promise<V>>();

  constructor(
    private readonly batch: (keys: readonly K[]) => Promise<Map<K, V>>,
    private readonly missing: () => V,
  ) {}

  load(key: K): Promise<V> {
    const cached = this.cache.get(key);
    if (cached) return cached;
    const promise = new Promise<V>((resolve, reject) => {
      this.queue.push({ key, resolve, reject });
      // Sibling resolvers may each be a few promise hops away (middlewares): wait until the
      // microtask queue has drained, as DataLoader does, before querying.
      if (this.queue.length === 1) void Promise.resolve().then(() => process.nextTick(() => void this.dispatch()));
    });
    this.cache.set(key, promise);
    return promise;
  }

  private async dispatch(): Promise<void> {
    const queue = this.queue;
    this.queue = [];
    try {
      const values = await this.batch(queue.map((item) => item.key));
      for (const item of queue) item.resolve(values.get(item.key) ?? this.missing());
    } catch (error) {
      for (const item of queue) {
        this.cache.delete(item.key);
        item.reject(error);
      }
    }
  }
}

const loaders = new WeakMap<object, Map<string, unknown>>();

/** The loader named `name` for this GraphQL context, created on first use. */
export function loaderFor<K, V>(context: object, name: string, create: () => BatchLoader<K, V>): BatchLoader<K, V> {
  let byName = loaders.get(context);
  if (!byName) loaders.set(context, (byName = new Map<string, unknown>()));
  let loader = byName.get(name) as BatchLoader<K, V> | undefined;
  if (!loader) byName.set(name, (loader = create()));
  return loader;
}

/**
 * Wraps a pub/sub iterator for a GraphQL subscription: counts it while it lives, and drops any
 * event that is not the target user's (defence in depth: topics are already per user).
 */
import type { Services } from '../../auth/context';
import type { GatewayEvent } from '../../contracts/events';

export function guardedSubscription<T extends GatewayEvent>(
  source: AsyncIterableIterator<GatewayEvent>,
  options: { field: string; userId: string | null; services: Services; accept?: (event: T) => boolean },
): AsyncIterableIterator<T> {
  const { field, userId, services, accept } = options;
  services.onSubscriptionChange(field, 1);
  let open = true;
  const close = () => {
    if (open) {
      open = false;
      services.onSubscriptionChange(field, -1);
    }
  };
  return {
    async next(): Promise<IteratorResult<T>> {
      for (;;) {
        const result = await source.next();
        if (result.done) {
          close();
          return { value: undefined, done: true };
        }
        const event = result.value as T;
        if (userId !== null && event.userId !== userId) continue;
        if (accept && !accept(event)) continue;
        services.onEventDelivered?.(field, event);
        return { value: event, done: false };
      }
    },
    async return(): Promise<IteratorResult<T>> {
      close();
      await source.return?.();
      return { value: undefined, done: true };
    },
    async throw(error?: unknown): Promise<IteratorResult<T>> {
      close();
      await source.return?.();
      throw error;
    },
    [Symbol.asyncIterator]() {
      return this;
    },
  };
}

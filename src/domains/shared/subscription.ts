/**
 * Wraps a pub/sub iterator for a GraphQL subscription: counts it while it lives, drops any
 * event that is not the target user's (defence in depth: topics are already per user), and
 * tells the socket when the subscription's bounded buffer overflowed (the client is too slow).
 */
import type { ConnectionControl, Services } from '../../auth/context';
import type { GatewayEvent } from '../../contracts/events';
import type { EventStream } from '../../lib/event-queue';

export function guardedSubscription<T extends GatewayEvent>(
  source: AsyncIterableIterator<GatewayEvent> & Partial<Pick<EventStream<GatewayEvent>, 'onOverflow'>>,
  options: {
    field: string;
    userId: string | null;
    services: Services;
    accept?: (event: T) => boolean;
    /** The operation's socket (`context.connection`): closed with 1013 when the buffer overflows. */
    connection?: ConnectionControl;
  },
): AsyncIterableIterator<T> {
  const { field, userId, services, accept, connection } = options;
  services.onSubscriptionChange(field, 1);
  source.onOverflow?.(() => connection?.slowConsumer(`${field}: event buffer overflowed`));
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

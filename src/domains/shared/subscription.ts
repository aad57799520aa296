/**
 * What every subscription resolver does: decide whose events the caller may receive (from the
 * token, per operation), subscribe to that user's topic of the family (or every user's, for an
 * administrator who omitted `userId`), and wrap the pub/sub iterator: counted while it lives,
 * dropping any event that is not the target user's (defence in depth: topics are already per
 * user) or that an argument such as `deviceId` narrows away; and tell the socket when the
 * subscription's bounded buffer overflowed (the client is too slow: closed with 1013).
 */
import { resolveTargetUser } from '../../auth/authorization';
import type { ConnectionControl, GraphQLContext, Services } from '../../auth/context';
import type { EventOfFamily, GatewayEvent } from '../../contracts/events';
import type { EventFamily } from '../../contracts/routing';
import type { EventStream, Sink } from '../../lib/event-queue';

/** A subscription's events, pulled (`next`) or pushed to a sink (the socket layer's fast path). */
export type SubscriptionStream<T> = AsyncIterableIterator<T> & Pick<EventStream<T>, 'attach' | 'flush'>;

/** The `subscribe` of a subscription field over one event family. */
export async function subscribeToFamily<F extends EventFamily>(
  context: unknown,
  family: F,
  options: {
    field: string;
    userId: string | null | undefined;
    /** Narrows device and app events to one device. */
    deviceId?: string | null;
  },
): Promise<SubscriptionStream<EventOfFamily[F]>> {
  const { deviceId } = options;
  const ctx = context as GraphQLContext;
  const target = resolveTargetUser(ctx, options.userId, { allowAll: true });
  const { pubsub, topics } = ctx.services;
  const source =
    target === null
      ? await pubsub.subscribe(topics.allUsers(family), { pattern: true })
      : await pubsub.subscribe(topics.user(family, target));
  return guardedSubscription<EventOfFamily[F]>(source, {
    field: options.field,
    userId: target,
    services: ctx.services,
    connection: ctx.connection,
    accept: (event) =>
      event.family === family && (deviceId == null || ('deviceId' in event && event.deviceId === deviceId)),
  });
}

export function guardedSubscription<T extends GatewayEvent>(
  source: EventStream<GatewayEvent>,
  options: {
    field: string;
    userId: string | null;
    services: Services;
    accept?: (event: T) => boolean;
    /** The operation's socket (`context.connection`): closed with 1013 when the buffer overflows. */
    connection?: ConnectionControl;
  },
): SubscriptionStream<T> {
  const { field, userId, services, accept, connection } = options;
  services.onSubscriptionChange(field, 1);
  source.onOverflow(() => connection?.slowConsumer(`${field}: event buffer overflowed`));
  const wanted = (event: T) => (userId === null || event.userId === userId) && (!accept || accept(event));
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
        if (!wanted(event)) continue;
        services.onEventDelivered?.(field, event);
        return { value: event, done: false };
      }
    },
    attach(sink: Sink<T>, onEnd: (error?: Error) => void) {
      source.attach(
        (value) => {
          const event = value as T;
          if (!wanted(event)) return true;
          if (!sink(event)) return false;
          services.onEventDelivered?.(field, event);
          return true;
        },
        (error) => {
          close();
          onEnd(error);
        },
      );
    },
    flush() {
      source.flush();
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

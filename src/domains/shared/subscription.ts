/**
 * What every subscription resolver does: decide whose events the caller may receive (from the
 * token, per operation), subscribe to that user's topic of the family (or every user's, for an
 * administrator who omitted `userId`), and wrap the pub/sub iterator: counted while it lives,
 * dropping any event that is not the target user's (defence in depth: topics are already per
 * user) or that an argument such as `deviceId` narrows away; and tell the socket when the
 * subscription's bounded buffer overflowed (the client is too slow: closed with 1013). With
 * `after`, the pub/sub replays the retained events that followed it before the live ones.
 */
import { resolveTargetUser } from '../../auth/authorization';
import type { ConnectionControl, GraphQLContext, Services } from '../../contracts/context';
import { BadUserInputError } from '../../contracts/errors';
import type { EventOfFamily, GatewayEvent } from '../../contracts/events';
import type { ResumeFrom } from '../../contracts/ports';
import { ALSO_ON, deliversTo, type EventFamily } from '../../contracts/routing';
import { MergedStream } from './merged-stream';
import type { Consumer, EventStream } from '../../lib/event-queue';

/** A subscription's events, pulled (`next`) or pushed to a sink (the socket layer's fast path). */
export type SubscriptionStream<T> = AsyncIterableIterator<T> & Pick<EventStream<T>, 'attach' | 'flush'>;

/** The `after` argument every subscription field takes. */
export const AFTER_DESCRIPTION =
  'The eventId this client last received: the retained events that followed it come first, in order, then the live ones, none twice. HISTORY_EXPIRED when it is no longer retained (refetch with queries, then subscribe without after).';

/**
 * An optional `ID` argument of a subscription field, from type-graphql's `args` (typed `any`):
 * GraphQL has coerced it to a string by then, or it is null (passed null) or absent.
 */
export function idArg(args: unknown, name: string): string | null | undefined {
  const value: unknown = typeof args === 'object' && args !== null ? (args as Record<string, unknown>)[name] : undefined;
  return typeof value === 'string' || value === null ? value : undefined;
}

/** The `subscribe` of a subscription field over one event family. */
export async function subscribeToFamily<F extends EventFamily>(
  context: unknown,
  family: F,
  options: {
    field: string;
    userId: string | null | undefined;
    /** Narrows device and app events to one device. */
    deviceId?: string | null;
    /** Narrows order status events to one order. */
    orderId?: string | null;
    /** Resume after this eventId: first the retained events that followed it, then live ones. */
    after?: string | null;
  },
): Promise<SubscriptionStream<EventOfFamily[F]>> {
  const { deviceId, orderId } = options;
  const ctx = context as GraphQLContext;
  const target = resolveTargetUser(ctx, options.userId, { allowAll: true });
  const { pubsub, topics } = ctx.services;
  const narrowed = (event: GatewayEvent) =>
    (deviceId == null || ('deviceId' in event && event.deviceId === deviceId)) &&
    (orderId == null || ('orderId' in event && event.orderId === orderId));
  const subscribeTo = (topicFamily: EventFamily, resume?: ResumeFrom) =>
    target === null
      ? pubsub.subscribe(topics.allUsers(topicFamily), { pattern: true, resume })
      : pubsub.subscribe(topics.user(topicFamily, target), { resume });
  const also = ALSO_ON[family];
  if (also === undefined) {
    // The same narrowing as GuardedSubscription's, applied to the replay before it is buffered.
    const resume = resumeFrom(options.after, target, (event) => deliversTo(event.family, event.type, family) && narrowed(event));
    return new GuardedSubscription<EventOfFamily[F]>(await subscribeTo(family, resume), {
      field: options.field,
      userId: target,
      family,
      deviceId: deviceId ?? undefined,
      orderId: orderId ?? undefined,
      services: ctx.services,
      connection: ctx.connection,
    });
  }
  // Some of this family's keys arrive on the older family's topic (ALSO_ON): both topics, merged.
  // Resuming, the older topic is subscribed first (plain), then this family's with the replay of
  // both from the one log, in order; what also arrived live is dropped by eventId.
  const accepts = (event: GatewayEvent) =>
    (target === null || event.userId === target) && deliversTo(event.family, event.type, family) && narrowed(event);
  const older = await subscribeTo(also);
  let own: EventStream<GatewayEvent>;
  try {
    own = await subscribeTo(family, resumeFrom(options.after, target, accepts));
  } catch (error) {
    await older.return?.();
    throw error;
  }
  return new MergedStream<EventOfFamily[F]>([own, older], accepts, {
    field: options.field,
    services: ctx.services,
    connection: ctx.connection,
  });
}

/** Longest `after` accepted: event ids are at most 200 characters (contracts/events.ts). */
const MAX_AFTER_LENGTH = 200;

export function resumeFrom(
  after: string | null | undefined,
  userId: string | null,
  accept: (event: GatewayEvent) => boolean,
  log?: string,
): ResumeFrom | undefined {
  if (after == null) return undefined;
  if (after.length === 0 || after.length > MAX_AFTER_LENGTH) {
    throw new BadUserInputError(`after must be an eventId of 1 to ${MAX_AFTER_LENGTH} characters`);
  }
  return log === undefined ? { after, userId, accept } : { after, userId, accept, log };
}

/**
 * One subscription's view of its pub/sub stream: counted while it lives, and passing on only the
 * events of its user, family and device. A class rather than closures, and its own stream's
 * consumer and overflow listener: there is one per live subscription (the benchmark's heap per
 * socket, docs/decisions/0605).
 */
export class GuardedSubscription<T extends GatewayEvent> implements SubscriptionStream<T>, Consumer<GatewayEvent> {
  private open = true;
  private readonly field: string;
  private readonly userId: string | null;
  private readonly family: EventFamily;
  private readonly deviceId: string | undefined;
  private readonly orderId: string | undefined;
  private readonly services: Services;
  private readonly connection: ConnectionControl | undefined;
  /** Who `attach` gave the events to. */
  private consumer: Consumer<T> | undefined;

  constructor(
    private readonly source: EventStream<GatewayEvent>,
    options: {
      field: string;
      userId: string | null;
      family: EventFamily;
      deviceId?: string;
      orderId?: string;
      services: Services;
      /** The operation's socket (`context.connection`): closed with 1013 when the buffer overflows. */
      connection?: ConnectionControl;
    },
  ) {
    this.field = options.field;
    this.userId = options.userId;
    this.family = options.family;
    this.deviceId = options.deviceId;
    this.orderId = options.orderId;
    this.services = options.services;
    this.connection = options.connection;
    this.services.onSubscriptionChange(this.field, 1);
    if (this.connection) source.onOverflow(this);
  }

  /** The stream's buffer overflowed: the client is too slow, its connection ends (1013). */
  overflowed(): void {
    this.connection?.slowConsumer(`${this.field}: event buffer overflowed`);
  }

  private wanted(event: GatewayEvent): event is T {
    return (
      (this.userId === null || event.userId === this.userId) &&
      deliversTo(event.family, event.type, this.family) &&
      (this.deviceId === undefined || ('deviceId' in event && event.deviceId === this.deviceId)) &&
      (this.orderId === undefined || ('orderId' in event && event.orderId === this.orderId))
    );
  }

  private close(): void {
    if (this.open) {
      this.open = false;
      this.services.onSubscriptionChange(this.field, -1);
    }
  }

  async next(): Promise<IteratorResult<T>> {
    for (;;) {
      const result = await this.source.next();
      if (result.done) {
        this.close();
        return { value: undefined, done: true };
      }
      const event = result.value;
      if (!this.wanted(event)) continue;
      this.services.onEventDelivered?.(this.field, event);
      return { value: event, done: false };
    }
  }

  attach(consumer: Consumer<T>): void {
    this.consumer = consumer;
    this.source.attach(this);
  }

  /** Consumer of the source: what this subscription wants goes on, the rest is skipped. */
  offer(event: GatewayEvent): boolean {
    if (!this.wanted(event)) return true;
    if (!this.consumer!.offer(event)) return false;
    this.services.onEventDelivered?.(this.field, event);
    return true;
  }

  ended(error?: Error): void {
    this.close();
    this.consumer?.ended(error);
  }

  flush(): void {
    this.source.flush();
  }

  async return(): Promise<IteratorResult<T>> {
    this.close();
    await this.source.return?.();
    return { value: undefined, done: true };
  }

  async throw(error?: unknown): Promise<IteratorResult<T>> {
    this.close();
    await this.source.return?.();
    throw error;
  }

  [Symbol.asyncIterator](): this {
    return this;
  }
}

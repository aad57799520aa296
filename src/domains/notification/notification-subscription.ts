/**
 * The `notifications` subscription: what this caller should see, from every audience its token
 * matches (its user, its `tenantId`, each of its `roles`, everyone). Each audience is one plain
 * pub/sub topic (`Topics.audience`), so an instance holds a channel only while one of its sockets
 * matches it, and an announcement to everyone is one publish. The streams are merged here, and an
 * announcement that reaches the caller through several audiences (a tenant and a role) is passed
 * on once: de-duplicated by eventId.
 *
 * Resuming: every audience's notifications are retained in one log (`Topics.notificationLog`),
 * so the `after` a client last received is found whichever audience it came through, and what
 * followed it is replayed in one pass, in publish order, filtered to the caller's audiences.
 * See docs/decisions/0101-notification-audiences.md.
 */
import { requireUser } from '../../auth/authorization';
import type { ConnectionControl, GraphQLContext, Services } from '../../contracts/context';
import type { GatewayEvent, NotificationAudience, NotificationEventMessage } from '../../contracts/events';
import type { EventStream, Sink } from '../../lib/event-queue';
import { resumeFrom, type SubscriptionStream } from '../shared/subscription';

/** Roles beyond this many in one token do not get a topic each (a token is not a role list store). */
export const MAX_ROLE_AUDIENCES = 20;

/** Event ids remembered for de-duplication: far more than one announcement's copies can be apart. */
const RECENT_IDS = 1_024;

/** The audiences a caller's token matches. */
export function audiencesOf(user: { readonly id: string; readonly tenantId?: string; readonly roles: readonly string[] }): NotificationAudience[] {
  return [
    { scope: 'USER', id: user.id },
    ...(user.tenantId !== undefined && user.tenantId !== '' ? [{ scope: 'TENANT' as const, id: user.tenantId }] : []),
    ...[...new Set(user.roles)].slice(0, MAX_ROLE_AUDIENCES).map((role) => ({ scope: 'ROLE' as const, id: role })),
    { scope: 'ALL' },
  ];
}

const sameAudience = (a: NotificationAudience, b: NotificationAudience) => a.scope === b.scope && a.id === b.id;

function isNotification(event: GatewayEvent): event is NotificationEventMessage {
  return event.family === 'notification';
}

export async function subscribeToNotifications(
  context: unknown,
  options: { field: string; after?: string | null },
): Promise<SubscriptionStream<NotificationEventMessage>> {
  const ctx = context as GraphQLContext;
  const user = requireUser(ctx);
  const { pubsub, topics } = ctx.services;
  const audiences = audiencesOf(user);
  const everyone = audiences[audiences.length - 1] as NotificationAudience;
  const own = audiences.slice(0, -1);
  // Resuming: the caller's own audiences are subscribed first (plain); then everyone's topic with
  // the replay of every audience of the caller's, in the log's order. Whatever was published
  // before the first subscriptions were confirmed is in that replay; whatever after arrives live
  // on its topic (and, if also replayed, is dropped as a duplicate).
  const resume = resumeFrom(
    options.after,
    null,
    (event) => isNotification(event) && audiences.some((audience) => sameAudience(audience, event.audience)),
    topics.notificationLog(),
  );
  const sources: EventStream<GatewayEvent>[] = [];
  const release = () => Promise.allSettled(sources.map((source) => source.return?.()));
  try {
    const settled = await Promise.allSettled(own.map((audience) => pubsub.subscribe(topics.audience(audience.scope, audience.id))));
    for (const result of settled) if (result.status === 'fulfilled') sources.push(result.value);
    const failed = settled.find((result): result is PromiseRejectedResult => result.status === 'rejected');
    if (failed) throw failed.reason;
    // First in the list: its replay is delivered before what the other topics hold.
    sources.unshift(await pubsub.subscribe(topics.audience(everyone.scope), resume ? { resume } : {}));
  } catch (error) {
    await release();
    throw error;
  }
  return new MergedNotifications(sources, audiences, { field: options.field, services: ctx.services, connection: ctx.connection });
}

/** A bounded set of recently seen ids: the oldest is forgotten first. */
class RecentIds {
  private readonly ids = new Set<string>();
  has(id: string): boolean {
    return this.ids.has(id);
  }
  add(id: string): void {
    this.ids.add(id);
    if (this.ids.size > RECENT_IDS) this.ids.delete(this.ids.values().next().value as string);
  }
}

type Waiter = { resolve: (result: IteratorResult<NotificationEventMessage>) => void; reject: (error: unknown) => void };

/**
 * Several audience streams as one subscription stream. Pushed (`attach`), each source delivers
 * straight into the sink; an event the sink cannot take now stays in its source, bounded there as
 * in any subscription. Pulled (`next`), at most one event waits here and the rest in the sources.
 * The first source to end (overflow, release) ends them all, once.
 */
export class MergedNotifications implements SubscriptionStream<NotificationEventMessage> {
  private readonly seen = new RecentIds();
  private readonly field: string;
  private readonly services: Services;
  private open = true;
  private ended = false;
  private endError: Error | undefined;
  private onEnd: ((error?: Error) => void) | undefined;
  private pulling = false;
  private pulled: NotificationEventMessage | undefined;
  private waiter: Waiter | undefined;

  constructor(
    private readonly sources: readonly EventStream<GatewayEvent>[],
    private readonly audiences: readonly NotificationAudience[],
    options: { field: string; services: Services; connection?: ConnectionControl },
  ) {
    this.field = options.field;
    this.services = options.services;
    this.services.onSubscriptionChange(this.field, 1);
    const { connection, field } = options;
    if (connection) for (const source of sources) source.onOverflow(() => connection.slowConsumer(`${field}: event buffer overflowed`));
  }

  /** Defence in depth: topics are per audience already. */
  private wanted(event: GatewayEvent): event is NotificationEventMessage {
    return isNotification(event) && this.audiences.some((audience) => sameAudience(audience, event.audience));
  }

  private end(error?: Error): void {
    if (this.ended) return;
    this.ended = true;
    this.endError = error;
    this.close();
    for (const source of this.sources) void source.return?.();
    this.onEnd?.(error);
    const waiter = this.waiter;
    this.waiter = undefined;
    if (waiter) {
      if (error) waiter.reject(error);
      else waiter.resolve({ value: undefined, done: true });
    }
  }

  private close(): void {
    if (this.open) {
      this.open = false;
      this.services.onSubscriptionChange(this.field, -1);
    }
  }

  attach(sink: Sink<NotificationEventMessage>, onEnd: (error?: Error) => void): void {
    this.onEnd = onEnd;
    for (const source of this.sources) {
      source.attach(
        (event) => {
          if (!this.wanted(event) || this.seen.has(event.eventId)) return true;
          if (!sink(event)) return false;
          this.seen.add(event.eventId);
          this.services.onEventDelivered?.(this.field, event);
          return true;
        },
        (error) => this.end(error),
      );
    }
    if (this.ended) onEnd(this.endError);
  }

  flush(): void {
    for (const source of this.sources) source.flush();
  }

  async next(): Promise<IteratorResult<NotificationEventMessage>> {
    if (!this.pulling) {
      this.pulling = true;
      this.attach(
        (event) => {
          const waiter = this.waiter;
          if (waiter) {
            this.waiter = undefined;
            waiter.resolve({ value: event, done: false });
            return true;
          }
          if (this.pulled !== undefined) return false;
          this.pulled = event;
          return true;
        },
        () => undefined,
      );
    }
    if (this.pulled !== undefined) {
      const value = this.pulled;
      this.pulled = undefined;
      this.flush();
      return { value, done: false };
    }
    if (this.ended) {
      if (this.endError) throw this.endError;
      return { value: undefined, done: true };
    }
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
    });
  }

  async return(): Promise<IteratorResult<NotificationEventMessage>> {
    this.end();
    await Promise.allSettled(this.sources.map((source) => source.return?.()));
    return { value: undefined, done: true };
  }

  async throw(error?: unknown): Promise<IteratorResult<NotificationEventMessage>> {
    await this.return();
    throw error;
  }

  [Symbol.asyncIterator](): this {
    return this;
  }
}

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
import type { GraphQLContext } from '../../contracts/context';
import type { GatewayEvent, NotificationAudience, NotificationEventMessage } from '../../contracts/events';
import type { EventStream } from '../../lib/event-queue';
import { MergedStream } from '../shared/merged-stream';
import { resumeFrom, type SubscriptionStream } from '../shared/subscription';

/** Roles beyond this many in one token do not get a topic each (a token is not a role list store). */
export const MAX_ROLE_AUDIENCES = 20;

/** The audiences a caller's token matches. */
export function audiencesOf(user: {
  readonly id: string;
  readonly tenantId?: string;
  readonly roles: readonly string[];
}): NotificationAudience[] {
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
  const release = () => Promise.allSettled(sources.map(async (source) => source.return?.()));
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
  // Defence in depth: the topics are per audience already.
  const accepts = (event: GatewayEvent) => isNotification(event) && audiences.some((audience) => sameAudience(audience, event.audience));
  return new MergedStream<NotificationEventMessage>(sources, accepts, {
    field: options.field,
    services: ctx.services,
    connection: ctx.connection,
  });
}

import { Arg, ID, Resolver, Root, Subscription } from 'type-graphql';
import { requireAdmin } from '../../auth/authorization';
import type { GraphQLContext } from '../../contracts/context';
import type { SystemEventMessage } from '../../contracts/events';
import { AFTER_DESCRIPTION, GuardedSubscription, idArg, resumeFrom, type SubscriptionStream } from '../shared/subscription';
import { SystemEvent } from './system-event.type';

/** The administrators' feed: one topic, retained in its own log. FORBIDDEN for anyone else. */
async function subscribeToSystemEvents(
  context: unknown,
  after: string | null | undefined,
): Promise<SubscriptionStream<SystemEventMessage>> {
  const ctx = context as GraphQLContext;
  requireAdmin(ctx);
  const { pubsub, topics } = ctx.services;
  const resume = resumeFrom(after, null, (event) => event.family === 'system', topics.systemLog());
  const source = await pubsub.subscribe(topics.system(), resume ? { resume } : {});
  return new GuardedSubscription<SystemEventMessage>(source, {
    field: 'systemEvents',
    userId: null,
    family: 'system',
    services: ctx.services,
    connection: ctx.connection,
  });
}

@Resolver()
export class SystemEventResolver {
  @Subscription(() => SystemEvent, {
    description:
      'Administrators only (FORBIDDEN otherwise): platform errors (system.error.*), backup and cleanup reports, quota metrics, failed usage reports. Stack traces never reach it. after resumes after the last eventId received.',
    subscribe: ({ args, context }) => subscribeToSystemEvents(context, idArg(args, 'after')),
  })
  systemEvents(
    @Root() event: SystemEventMessage,
    @Arg('after', () => ID, { nullable: true, description: AFTER_DESCRIPTION }) _after?: string,
  ): SystemEvent {
    return event;
  }
}

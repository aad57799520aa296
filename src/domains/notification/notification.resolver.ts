import { Arg, Authorized, Ctx, ID, Mutation, Resolver, Root, Subscription } from 'type-graphql';
import { requireUser } from '../../auth/authorization';
import type { GraphQLContext } from '../../contracts/context';
import type { NotificationEventMessage } from '../../contracts/events';
import { AFTER_DESCRIPTION, idArg } from '../shared/subscription';
import { AnnouncementInput } from './announcement.input';
import { Announcement } from './announcement.type';
import { NotificationEvent } from './notification-event.type';
import { subscribeToNotifications } from './notification-subscription';

@Resolver()
export class NotificationResolver {
  @Subscription(() => NotificationEvent, {
    description:
      'What this caller should see: personal notifications (notification.send) and announcements to its tenant, one of its roles, itself, or everyone, each once. Never coalesced. after resumes after the last eventId received.',
    subscribe: ({ args, context }) => subscribeToNotifications(context, { field: 'notifications', after: idArg(args, 'after') }),
  })
  notifications(
    @Root() event: NotificationEventMessage,
    @Arg('after', () => ID, { nullable: true, description: AFTER_DESCRIPTION }) _after?: string,
  ): NotificationEvent {
    return event;
  }

  @Authorized('admin')
  @Mutation(() => Announcement, {
    description:
      'Administrators: an announcement to everyone, a tenant, a role and/or some users, through the outbox; each matching connected user receives it once on notifications, on every instance',
  })
  broadcastAnnouncement(
    @Arg('input', () => AnnouncementInput) input: AnnouncementInput,
    @Ctx() context: GraphQLContext,
  ): Promise<Announcement> {
    return context.services.announcements.broadcast(requireUser(context), input);
  }
}

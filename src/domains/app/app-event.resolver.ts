import { Arg, ID, Resolver, Root, Subscription } from 'type-graphql';
import type { AppInstalledEventMessage } from '../../contracts/events';
import { AFTER_DESCRIPTION, idArg, subscribeToFamily } from '../shared/subscription';
import { AppInstalledEvent } from './app-event.type';

@Resolver()
export class AppEventResolver {
  @Subscription(() => AppInstalledEvent, {
    description:
      "Apps installed on a user's devices (app.installed, app.install.completed). userId defaults to the caller; administrators may pass any id, or omit it for every user's. deviceId narrows to one device. after resumes after the last eventId received.",
    subscribe: ({ args, context }) =>
      subscribeToFamily(context, 'app', {
        field: 'appInstalled',
        userId: idArg(args, 'userId'),
        deviceId: idArg(args, 'deviceId'),
        after: idArg(args, 'after'),
      }),
  })
  appInstalled(
    @Root() event: AppInstalledEventMessage,
    @Arg('userId', () => ID, { nullable: true }) _userId?: string,
    @Arg('deviceId', () => ID, { nullable: true }) _deviceId?: string,
    @Arg('after', () => ID, { nullable: true, description: AFTER_DESCRIPTION }) _after?: string,
  ): AppInstalledEvent {
    return event;
  }
}

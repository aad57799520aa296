import { Arg, ID, Resolver, Root, Subscription } from 'type-graphql';
import type { AppInstallationEventMessage, AppInstalledEventMessage } from '../../contracts/events';
import { AppInstallationEvent } from './app-installation-event.type';
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

  @Subscription(() => AppInstallationEvent, {
    description:
      "The lifecycle of apps on a user's devices (app.install.*, app.uninstall.*, app.installed, app.uninstalled) and catalogue updates of the apps they have installed (app.updated, one event per user, without deviceId). userId defaults to the caller; administrators may pass any id, or omit it for every user's. deviceId narrows to one device (catalogue updates name none). after resumes after the last eventId received.",
    subscribe: ({ args, context }) =>
      subscribeToFamily(context, 'installation', {
        field: 'appInstallationChanged',
        userId: idArg(args, 'userId'),
        deviceId: idArg(args, 'deviceId'),
        after: idArg(args, 'after'),
      }),
  })
  appInstallationChanged(
    @Root() event: AppInstallationEventMessage,
    @Arg('userId', () => ID, { nullable: true }) _userId?: string,
    @Arg('deviceId', () => ID, { nullable: true }) _deviceId?: string,
    @Arg('after', () => ID, { nullable: true, description: AFTER_DESCRIPTION }) _after?: string,
  ): AppInstallationEvent {
    return event;
  }
}

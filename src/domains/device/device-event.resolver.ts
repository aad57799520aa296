import { Arg, ID, Resolver, Root, Subscription } from 'type-graphql';
import type { DeviceNoticeEventMessage, DeviceStatusEventMessage } from '../../contracts/events';
import { DeviceNoticeEvent } from './device-notice.type';
import { AFTER_DESCRIPTION, idArg, subscribeToFamily } from '../shared/subscription';
import { DeviceStatusEvent } from './device-event.type';

@Resolver()
export class DeviceEventResolver {
  @Subscription(() => DeviceStatusEvent, {
    description:
      "Status changes of a user's devices (device.* events). userId defaults to the caller; administrators may pass any id, or omit it for every user's. deviceId narrows to one device. after resumes after the last eventId received.",
    subscribe: ({ args, context }) =>
      subscribeToFamily(context, 'device', {
        field: 'deviceStatusChanged',
        userId: idArg(args, 'userId'),
        deviceId: idArg(args, 'deviceId'),
        after: idArg(args, 'after'),
      }),
  })
  deviceStatusChanged(
    @Root() event: DeviceStatusEventMessage,
    @Arg('userId', () => ID, { nullable: true }) _userId?: string,
    @Arg('deviceId', () => ID, { nullable: true }) _deviceId?: string,
    @Arg('after', () => ID, { nullable: true, description: AFTER_DESCRIPTION }) _after?: string,
  ): DeviceStatusEvent {
    return event;
  }

  @Subscription(() => DeviceNoticeEvent, {
    description:
      "Notices about a user's devices: expiry warnings, backups created, connection state (device.expiration_warning, device.backup_created, device.connection.*). Never coalesced. userId defaults to the caller; administrators may pass any id, or omit it for every user's. deviceId narrows to one device. after resumes after the last eventId received.",
    subscribe: ({ args, context }) =>
      subscribeToFamily(context, 'deviceNotice', {
        field: 'deviceNotice',
        userId: idArg(args, 'userId'),
        deviceId: idArg(args, 'deviceId'),
        after: idArg(args, 'after'),
      }),
  })
  deviceNotice(
    @Root() event: DeviceNoticeEventMessage,
    @Arg('userId', () => ID, { nullable: true }) _userId?: string,
    @Arg('deviceId', () => ID, { nullable: true }) _deviceId?: string,
    @Arg('after', () => ID, { nullable: true, description: AFTER_DESCRIPTION }) _after?: string,
  ): DeviceNoticeEvent {
    return event;
  }
}

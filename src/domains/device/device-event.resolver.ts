import { Arg, ID, Resolver, Root, Subscription } from 'type-graphql';
import type { DeviceStatusEventMessage } from '../../contracts/events';
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
}

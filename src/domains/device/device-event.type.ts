import { Field, ID, Int, ObjectType } from 'type-graphql';
import type { DeviceEntity } from '../../contracts/entities';
import { RealtimeEvent } from '../shared/event-header.type';
import { DeviceStatus } from './device-status.enum';
import { Device } from './device.type';

@ObjectType({ implements: RealtimeEvent, description: "A change of a device's status, pushed by deviceStatusChanged" })
export class DeviceStatusEvent extends RealtimeEvent {
  @Field(() => ID) deviceId!: string;
  @Field({ nullable: true }) deviceName?: string;
  @Field(() => DeviceStatus, { nullable: true, description: 'The status before, when the platform said' })
  previousStatus?: DeviceStatus;
  @Field(() => DeviceStatus) status!: DeviceStatus;
  @Field({ nullable: true, description: 'Why (errors, failover), as the platform sent it' }) reason?: string;
  @Field({ nullable: true, description: 'The provider running the device, e.g. redroid' }) providerType?: string;
  @Field({ nullable: true, description: 'Failover: what failed (device.recovery_*, device.permanent_failure)' }) failureType?: string;
  @Field({ nullable: true, description: 'Failover: how recovery was tried' }) recoveryStrategy?: string;
  @Field(() => Int, { nullable: true, description: 'Failover: recovery attempts so far' }) attempts?: number;
  @Field(() => Device, {
    nullable: true,
    description:
      'The device as it stands after this event, as device(id) returns it (updates a normalized cache by itself); never older than one already pushed. installations cannot be selected here. Null only without a read model.',
  })
  // The read model's row as JSON (contracts/entities.ts), the GraphQL type Device.
  device?: DeviceEntity | null;
}

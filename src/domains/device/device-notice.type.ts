import { Field, ID, Int, ObjectType, registerEnumType } from 'type-graphql';
import { DEVICE_NOTICE_KINDS } from '../../contracts/events';
import { DateTimeScalar } from '../shared/date-time.scalar';
import { RealtimeEvent } from '../shared/event-header.type';

export const DeviceNoticeKind = Object.fromEntries(DEVICE_NOTICE_KINDS.map((k) => [k, k])) as {
  [K in (typeof DEVICE_NOTICE_KINDS)[number]]: K;
};
registerEnumType(DeviceNoticeKind, { name: 'DeviceNoticeKind', description: 'What a device notice is about' });

@ObjectType({ implements: RealtimeEvent, description: "Expiry, backup and connection notices of a user's devices, pushed by deviceNotice" })
export class DeviceNoticeEvent extends RealtimeEvent {
  @Field(() => ID) deviceId!: string;
  @Field({ nullable: true }) deviceName?: string;
  @Field(() => DeviceNoticeKind) kind!: keyof typeof DeviceNoticeKind;
  @Field(() => DateTimeScalar, { nullable: true }) expiresAt?: string;
  @Field(() => Int, { nullable: true }) daysRemaining?: number;
  @Field(() => ID, { nullable: true }) snapshotId?: string;
  @Field({ nullable: true }) snapshotName?: string;
  @Field(() => Int, { nullable: true }) retryCount?: number;
  @Field({ nullable: true }) message?: string;
}

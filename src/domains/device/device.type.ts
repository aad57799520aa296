import { Field, ID, Int, ObjectType } from 'type-graphql';
import { connectionTypes } from '../shared/connection';
import { DateTimeScalar } from '../shared/date-time.scalar';
import { DeviceStatus } from './device-status.enum';

export { DeviceStatus };

@ObjectType({ description: "A cloud phone, as the gateway's read model holds it" })
export class Device {
  @Field(() => ID) id!: string;
  @Field(() => ID) userId!: string;
  @Field() name!: string;
  @Field(() => DeviceStatus) status!: DeviceStatus;
  @Field(() => String, { nullable: true }) providerType!: string | null;
  @Field(() => Int, { nullable: true }) cpuCores!: number | null;
  @Field(() => Int, { nullable: true }) memoryMB!: number | null;
  @Field(() => Int, { nullable: true }) storageGB!: number | null;
  @Field(() => String, { nullable: true, description: 'Why the last status change happened, as the platform said' })
  statusReason!: string | null;
  @Field(() => String, { nullable: true, description: 'Failover: what failed with the last status change' }) failureType!: string | null;
  @Field(() => String, { nullable: true, description: 'Failover: how recovery was tried' }) recoveryStrategy!: string | null;
  @Field(() => Int, { nullable: true, description: 'Failover: recovery attempts with the last status change' }) recoveryAttempts!:
    number | null;
  @Field(() => Int, { description: 'Incremented on every change' }) version!: number;
  @Field(() => DateTimeScalar) createdAt!: Date;
  @Field(() => DateTimeScalar) updatedAt!: Date;
}

export const { EdgeType: DeviceEdge, ConnectionType: DeviceConnection } = connectionTypes('Device', Device);

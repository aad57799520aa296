import { Field, Float, ID, Int, ObjectType, registerEnumType } from 'type-graphql';
import type { QuotaEntity } from '../../contracts/entities';
import { QUOTA_ROUTING_KEYS } from '../../contracts/routing';
import { DateTimeScalar } from '../shared/date-time.scalar';
import { RealtimeEvent } from '../shared/event-header.type';

/**
 * Lifecycle state of a quota: a const object with a string-union type rather than a TS enum (as `DeviceStatus`),
 * so the Prisma row's status, the same union, compares with it and needs no cast.
 */
export const QuotaStatus = {
  ACTIVE: 'ACTIVE',
  EXCEEDED: 'EXCEEDED',
  SUSPENDED: 'SUSPENDED',
  EXPIRED: 'EXPIRED',
} as const;
export type QuotaStatus = (typeof QuotaStatus)[keyof typeof QuotaStatus];
registerEnumType(QuotaStatus, { name: 'QuotaStatus', description: 'Lifecycle state of a quota' });

/** The event kinds: one per `quota.*` routing key (docs/event-catalogue.md). */
export const QuotaEventKind = Object.fromEntries(Object.values(QUOTA_ROUTING_KEYS).map((kind) => [kind, kind])) as {
  [K in (typeof QUOTA_ROUTING_KEYS)[keyof typeof QUOTA_ROUTING_KEYS]]: K;
};
registerEnumType(QuotaEventKind, {
  name: 'QuotaEventKind',
  description: 'What happened to the quota; one per quota.* routing key',
});

@ObjectType({ description: 'What the plan allows. Every field is null when the platform did not send it.' })
export class QuotaLimits {
  @Field(() => Int, { nullable: true }) maxDevices?: number;
  @Field(() => Int, { nullable: true }) maxConcurrentDevices?: number;
  @Field(() => Int, { nullable: true }) maxCpuCoresPerDevice?: number;
  @Field(() => Int, { nullable: true }) maxMemoryMBPerDevice?: number;
  @Field(() => Int, { nullable: true }) maxStorageGBPerDevice?: number;
  @Field(() => Int, { nullable: true }) totalCpuCores?: number;
  @Field(() => Float, { nullable: true }) totalMemoryGB?: number;
  @Field(() => Float, { nullable: true }) totalStorageGB?: number;
  @Field(() => Float, { nullable: true }) maxBandwidthMbps?: number;
  @Field(() => Float, { nullable: true }) monthlyTrafficGB?: number;
  @Field(() => Float, { nullable: true }) maxUsageHoursPerDay?: number;
  @Field(() => Float, { nullable: true }) maxUsageHoursPerMonth?: number;
}

@ObjectType({ description: 'What is consumed. Every field is null when the platform did not send it.' })
export class QuotaUsage {
  @Field(() => Int, { nullable: true }) currentDevices?: number;
  @Field(() => Int, { nullable: true }) currentConcurrentDevices?: number;
  @Field(() => Int, { nullable: true }) usedCpuCores?: number;
  @Field(() => Float, { nullable: true }) usedMemoryGB?: number;
  @Field(() => Float, { nullable: true }) usedStorageGB?: number;
  @Field(() => Float, { nullable: true }) currentBandwidthMbps?: number;
  @Field(() => Float, { nullable: true }) monthlyTrafficUsedGB?: number;
  @Field(() => Float, { nullable: true }) todayUsageHours?: number;
  @Field(() => Float, { nullable: true }) monthlyUsageHours?: number;
}

@ObjectType({ description: "A user's resource quota, as the gateway's read model holds it" })
export class Quota {
  @Field(() => ID) id!: string;
  @Field(() => ID) userId!: string;
  @Field(() => ID, { nullable: true }) planId?: string | null;
  @Field(() => QuotaStatus) status!: QuotaStatus;
  @Field(() => QuotaLimits) limits!: QuotaLimits;
  @Field(() => QuotaUsage) usage!: QuotaUsage;
  @Field(() => DateTimeScalar, { nullable: true }) validFrom?: Date | null;
  @Field(() => DateTimeScalar, { nullable: true }) validUntil?: Date | null;
  @Field() autoRenew!: boolean;
  @Field(() => Int, { description: 'Incremented on every change' }) version!: number;
  @Field(() => DateTimeScalar) updatedAt!: Date;
}

@ObjectType({ implements: RealtimeEvent, description: 'A change to a quota, pushed by quotaChanged' })
export class QuotaEvent extends RealtimeEvent {
  @Field(() => ID, { nullable: true }) quotaId?: string;
  @Field(() => QuotaEventKind) kind!: string;
  @Field(() => QuotaLimits, { nullable: true }) limits?: QuotaLimits;
  @Field(() => QuotaUsage, { nullable: true }) usage?: QuotaUsage;
  @Field(() => Float, { nullable: true, description: 'Highest usage percentage across resources' })
  usagePercent?: number;
  @Field({ nullable: true, description: 'Alert severity, as the platform sent it (alerts)' }) severity?: string;
  @Field(() => QuotaStatus, { nullable: true }) status?: QuotaStatus;
  @Field(() => DateTimeScalar, { nullable: true }) validUntil?: string;
  @Field(() => Quota, {
    nullable: true,
    description: 'The quota as it stands after this event, as quota returns it (updates a normalized cache by itself); null once deleted',
  })
  // The read model's row as JSON (contracts/entities.ts), the GraphQL type Quota.
  quota?: QuotaEntity | null;
}

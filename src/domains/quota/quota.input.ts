import { IsInt, IsNumber, Max, MaxLength, Min, ValidateNested } from 'class-validator';
import { Field, Float, ID, InputType, Int } from 'type-graphql';
import { DateTimeScalar } from '../shared/date-time.scalar';
import { QuotaStatus } from './quota.type';

const INT_MAX = 2_147_483_647;

@InputType({ description: 'Limits to set; omitted fields keep their value, null clears one' })
export class QuotaLimitsInput {
  @Field(() => Int, { nullable: true }) @IsInt() @Min(0) @Max(INT_MAX) maxDevices?: number | null;
  @Field(() => Int, { nullable: true }) @IsInt() @Min(0) @Max(INT_MAX) maxConcurrentDevices?: number | null;
  @Field(() => Int, { nullable: true }) @IsInt() @Min(0) @Max(INT_MAX) maxCpuCoresPerDevice?: number | null;
  @Field(() => Int, { nullable: true }) @IsInt() @Min(0) @Max(INT_MAX) maxMemoryMBPerDevice?: number | null;
  @Field(() => Int, { nullable: true }) @IsInt() @Min(0) @Max(INT_MAX) maxStorageGBPerDevice?: number | null;
  @Field(() => Int, { nullable: true }) @IsInt() @Min(0) @Max(INT_MAX) totalCpuCores?: number | null;
  @Field(() => Float, { nullable: true }) @IsNumber() @Min(0) totalMemoryGB?: number | null;
  @Field(() => Float, { nullable: true }) @IsNumber() @Min(0) totalStorageGB?: number | null;
  @Field(() => Float, { nullable: true }) @IsNumber() @Min(0) maxBandwidthMbps?: number | null;
  @Field(() => Float, { nullable: true }) @IsNumber() @Min(0) monthlyTrafficGB?: number | null;
  @Field(() => Float, { nullable: true }) @IsNumber() @Min(0) @Max(24) maxUsageHoursPerDay?: number | null;
  @Field(() => Float, { nullable: true }) @IsNumber() @Min(0) @Max(744) maxUsageHoursPerMonth?: number | null;
}

@InputType({ description: 'What updateQuota changes; at least one field' })
export class UpdateQuotaInput {
  @Field(() => QuotaLimitsInput, { nullable: true }) @ValidateNested() limits?: QuotaLimitsInput | null;
  @Field(() => QuotaStatus, { nullable: true }) status?: QuotaStatus | null;
  @Field(() => ID, { nullable: true }) @MaxLength(200) planId?: string | null;
  @Field(() => DateTimeScalar, { nullable: true }) validFrom?: Date | null;
  @Field(() => DateTimeScalar, { nullable: true }) validUntil?: Date | null;
  @Field(() => Boolean, { nullable: true }) autoRenew?: boolean | null;
}

@InputType({
  description: 'Resources to take (deductQuota) or give back (restoreQuota); omitted fields are zero, at least one must be positive',
})
export class QuotaUsageDeltaInput {
  @Field(() => Int, { nullable: true, description: 'currentDevices / maxDevices' }) @IsInt() @Min(0) @Max(10_000) devices?: number | null;
  @Field(() => Int, { nullable: true, description: 'currentConcurrentDevices / maxConcurrentDevices' })
  @IsInt()
  @Min(0)
  @Max(10_000)
  concurrentDevices?: number | null;
  @Field(() => Int, { nullable: true, description: 'usedCpuCores / totalCpuCores' }) @IsInt() @Min(0) @Max(1_000_000) cpuCores?:
    number | null;
  @Field(() => Float, { nullable: true, description: 'usedMemoryGB / totalMemoryGB' }) @IsNumber() @Min(0) @Max(1e9) memoryGB?:
    number | null;
  @Field(() => Float, { nullable: true, description: 'usedStorageGB / totalStorageGB' }) @IsNumber() @Min(0) @Max(1e9) storageGB?:
    number | null;
  @Field(() => Float, { nullable: true, description: 'monthlyTrafficUsedGB / monthlyTrafficGB (metered: may pass the limit)' })
  @IsNumber()
  @Min(0)
  @Max(1e9)
  trafficGB?: number | null;
  @Field(() => Float, { nullable: true, description: 'todayUsageHours and monthlyUsageHours (metered: may pass the limit)' })
  @IsNumber()
  @Min(0)
  @Max(744)
  usageHours?: number | null;
}

@InputType({ description: 'What renewQuota does' })
export class RenewQuotaInput {
  @Field(() => Int, { description: 'Days added to validUntil (or to now, when it has passed)' })
  @IsInt()
  @Min(1)
  @Max(3_660)
  extendDays!: number;
}

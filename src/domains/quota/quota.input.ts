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

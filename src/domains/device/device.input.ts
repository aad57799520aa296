import { IsInt, Length, Matches, Max, MaxLength, Min } from 'class-validator';
import { ArgsType, Field, ID, InputType, Int } from 'type-graphql';
import { DeviceStatus } from './device.type';

@InputType({ description: 'A new cloud phone' })
export class CreateDeviceInput {
  @Field() @Length(1, 100) @Matches(/\S/, { message: 'name must not be blank' }) name!: string;
  @Field(() => String, { nullable: true }) @MaxLength(50) providerType?: string | null;
  @Field(() => Int, { nullable: true }) @IsInt() @Min(1) @Max(64) cpuCores?: number | null;
  @Field(() => Int, { nullable: true }) @IsInt() @Min(256) @Max(262_144) memoryMB?: number | null;
  @Field(() => Int, { nullable: true }) @IsInt() @Min(1) @Max(4_096) storageGB?: number | null;
}

@ArgsType()
export class DevicesArgs {
  @Field(() => ID, { nullable: true, description: 'Defaults to the caller; administrators may omit it for every user' })
  userId?: string | null;
  @Field(() => DeviceStatus, { nullable: true, description: 'Only devices in this status; without it, all but DELETED' })
  status?: DeviceStatus | null;
  @Field(() => Int, { nullable: true, description: 'Page size, 1 to 100 (default 20)' }) first?: number | null;
  @Field(() => String, { nullable: true, description: 'The endCursor of the previous page' }) after?: string | null;
}

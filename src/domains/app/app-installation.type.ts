import { Field, ID, Int, ObjectType, registerEnumType } from 'type-graphql';
import { DateTimeScalar } from '../shared/date-time.scalar';

/**
 * State of an app on a device: a const object with a string-union type rather than a TS enum (as `DeviceStatus`),
 * so the Prisma row's status, the same union, compares with it and needs no cast.
 */
export const InstallationStatus = {
  INSTALLING: 'INSTALLING',
  INSTALLED: 'INSTALLED',
  FAILED: 'FAILED',
  UNINSTALLED: 'UNINSTALLED',
  UNINSTALLING: 'UNINSTALLING',
} as const;
export type InstallationStatus = (typeof InstallationStatus)[keyof typeof InstallationStatus];
registerEnumType(InstallationStatus, { name: 'InstallationStatus', description: 'State of an app on a device' });

@ObjectType({ description: 'An app on a device' })
export class AppInstallation {
  @Field(() => ID) id!: string;
  @Field(() => ID) deviceId!: string;
  @Field(() => ID) userId!: string;
  @Field(() => ID, { nullable: true }) appId!: string | null;
  @Field(() => String, { nullable: true }) packageName!: string | null;
  @Field(() => String, { nullable: true }) versionName!: string | null;
  @Field(() => InstallationStatus) status!: InstallationStatus;
  @Field(() => DateTimeScalar, { nullable: true }) installedAt!: Date | null;
  @Field(() => DateTimeScalar, { nullable: true }) uninstalledAt!: Date | null;
  @Field(() => String, { nullable: true, description: 'Why the last install or uninstall failed (FAILED), as the platform said' })
  error!: string | null;
  @Field(() => Int) version!: number;
  @Field(() => DateTimeScalar) updatedAt!: Date;
}

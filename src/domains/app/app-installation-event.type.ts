import { Field, ID, ObjectType, registerEnumType } from 'type-graphql';
import type { AppInstallationEntity } from '../../contracts/entities';
import { INSTALLATION_EVENT_STATUSES } from '../../contracts/events';
import { RealtimeEvent } from '../shared/event-header.type';
import { AppInstallation } from './app-installation.type';

export const InstallationEventStatus = Object.fromEntries(INSTALLATION_EVENT_STATUSES.map((s) => [s, s])) as {
  [K in (typeof INSTALLATION_EVENT_STATUSES)[number]]: K;
};
registerEnumType(InstallationEventStatus, {
  name: 'InstallationEventStatus',
  description: "A step of an app's lifecycle on a device; UPDATED: a new version in the catalogue",
});

@ObjectType({ implements: RealtimeEvent, description: "A step of an app's lifecycle on a user's device, pushed by appInstallationChanged" })
export class AppInstallationEvent extends RealtimeEvent {
  @Field(() => ID, { nullable: true }) installationId?: string;
  @Field(() => ID, { nullable: true }) appId?: string;
  @Field(() => ID, { nullable: true, description: 'Absent for UPDATED (a catalogue change, not about one device)' }) deviceId?: string;
  @Field({ nullable: true }) packageName?: string;
  @Field({ nullable: true }) versionName?: string;
  @Field(() => InstallationEventStatus) status!: keyof typeof InstallationEventStatus;
  @Field(() => InstallationEventStatus, { nullable: true }) previousStatus?: keyof typeof InstallationEventStatus;
  @Field({ nullable: true, description: 'Why it failed (FAILED), as the platform sent it' }) error?: string;
  @Field(() => AppInstallation, {
    nullable: true,
    description:
      'The installation as it stands after this event, as appInstallations returns it (updates a normalized cache by itself). Null for a catalogue change (UPDATED names no device) and when the read model has none to show.',
  })
  // The read model's row as JSON (contracts/entities.ts), the GraphQL type AppInstallation.
  installation?: AppInstallationEntity | null;
}

import { Field, ID, ObjectType } from 'type-graphql';
import type { AppInstallationEntity } from '../../contracts/entities';
import { RealtimeEvent } from '../shared/event-header.type';
import { AppInstallation } from './app-installation.type';

@ObjectType({ implements: RealtimeEvent, description: 'An app installed on a device, pushed by appInstalled' })
export class AppInstalledEvent extends RealtimeEvent {
  @Field(() => ID, { nullable: true }) installationId?: string;
  @Field(() => ID, { nullable: true, description: 'The platform also calls it applicationId' }) appId?: string;
  @Field(() => ID) deviceId!: string;
  @Field({ nullable: true }) packageName?: string;
  @Field({ nullable: true }) versionName?: string;
  @Field(() => AppInstallation, {
    nullable: true,
    description:
      'The installation as it stands after this event, as appInstallations returns it (updates a normalized cache by itself). Null when the read model has none to show: a redelivered event naming no installation id whose app is no longer on the device, or no read model.',
  })
  // The read model's row as JSON (contracts/entities.ts), the GraphQL type AppInstallation.
  installation?: AppInstallationEntity | null;
}

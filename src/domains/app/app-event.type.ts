import { Field, ID, ObjectType } from 'type-graphql';
import { RealtimeEvent } from '../shared/event-header.type';

@ObjectType({ implements: RealtimeEvent, description: 'An app installed on a device, pushed by appInstalled' })
export class AppInstalledEvent extends RealtimeEvent {
  @Field(() => ID, { nullable: true }) installationId?: string;
  @Field(() => ID, { nullable: true, description: 'The platform also calls it applicationId' }) appId?: string;
  @Field(() => ID) deviceId!: string;
  @Field({ nullable: true }) packageName?: string;
  @Field({ nullable: true }) versionName?: string;
}

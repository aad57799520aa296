import { ArrayMaxSize, IsIn, Length, MaxLength } from 'class-validator';
import { Field, ID, InputType } from 'type-graphql';
import { MAX_NOTIFICATION_MESSAGE, MAX_NOTIFICATION_TITLE } from '../../contracts/events';
import { NotificationSeverity } from './notification-event.type';

/** Users one announcement may name one by one; larger groups are a tenant or a role. */
export const MAX_ANNOUNCEMENT_USERS = 1_000;

@InputType({ description: 'Who receives an announcement: any of these (a user matching several gets it once)' })
export class AnnouncementAudienceInput {
  @Field(() => Boolean, { nullable: true, description: 'Everyone connected' }) all?: boolean | null;
  @Field(() => ID, { nullable: true, description: "Users whose token's tenantId is this" }) @Length(1, 200) tenantId?: string | null;
  @Field(() => String, { nullable: true, description: "Users whose token's roles include this" }) @Length(1, 100) role?: string | null;
  @Field(() => [ID], { nullable: true, description: `These users (at most ${MAX_ANNOUNCEMENT_USERS})` })
  @ArrayMaxSize(MAX_ANNOUNCEMENT_USERS)
  @Length(1, 200, { each: true })
  userIds?: string[] | null;
}

@InputType({ description: 'An announcement to a tenant, a role, some users or everyone' })
export class AnnouncementInput {
  @Field() @Length(1, MAX_NOTIFICATION_TITLE) title!: string;
  @Field() @Length(1, MAX_NOTIFICATION_MESSAGE) message!: string;
  @Field(() => NotificationSeverity, { nullable: true, defaultValue: 'INFO' })
  @IsIn(Object.values(NotificationSeverity))
  severity?: keyof typeof NotificationSeverity | null;
  @Field(() => String, { nullable: true }) @MaxLength(100) category?: string | null;
  @Field(() => AnnouncementAudienceInput) audience!: AnnouncementAudienceInput;
}

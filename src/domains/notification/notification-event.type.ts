import { Field, ID, ObjectType, registerEnumType } from 'type-graphql';
import { NOTIFICATION_SCOPES, NOTIFICATION_SEVERITIES } from '../../contracts/events';
import { DateTimeScalar } from '../shared/date-time.scalar';
import { JsonScalar } from '../shared/json.scalar';

export const NotificationScope = Object.fromEntries(NOTIFICATION_SCOPES.map((s) => [s, s])) as {
  [K in (typeof NOTIFICATION_SCOPES)[number]]: K;
};
registerEnumType(NotificationScope, {
  name: 'NotificationScope',
  description: 'Whom a notification was sent to: one user, a tenant, a role, or everyone',
});

export const NotificationSeverity = Object.fromEntries(NOTIFICATION_SEVERITIES.map((s) => [s, s])) as {
  [K in (typeof NOTIFICATION_SEVERITIES)[number]]: K;
};
registerEnumType(NotificationSeverity, { name: 'NotificationSeverity' });

/** Not a RealtimeEvent: an announcement to a tenant, a role or everyone has no user. */
@ObjectType({ description: 'A personal notification or an announcement, pushed by notifications' })
export class NotificationEvent {
  @Field(() => ID, { description: 'Unique per notification; the same on redelivery. De-duplicate by it.' }) eventId!: string;
  @Field({ description: 'The routing key it came from: notification.send, or notification.announcement' }) type!: string;
  @Field(() => ID, { nullable: true, description: 'The recipient, for scope USER' }) userId?: string;
  @Field(() => DateTimeScalar) occurredAt!: string;
  @Field(() => NotificationScope) scope!: keyof typeof NotificationScope;
  @Field(() => NotificationSeverity) severity!: keyof typeof NotificationSeverity;
  @Field({ nullable: true }) category?: string;
  @Field() title!: string;
  @Field() message!: string;
  @Field(() => JsonScalar, { nullable: true }) data?: Record<string, unknown>;
}

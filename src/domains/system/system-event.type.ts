import { Field, ID, ObjectType, registerEnumType } from 'type-graphql';
import { SYSTEM_EVENT_KINDS } from '../../contracts/events';
import { DateTimeScalar } from '../shared/date-time.scalar';
import { JsonScalar } from '../shared/json.scalar';

export const SystemEventKind = Object.fromEntries(SYSTEM_EVENT_KINDS.map((k) => [k, k])) as {
  [K in (typeof SYSTEM_EVENT_KINDS)[number]]: K;
};
registerEnumType(SystemEventKind, { name: 'SystemEventKind', description: "What an administrators' system event reports" });

/** Not a RealtimeEvent: most system events concern no user. */
@ObjectType({ description: "What goes wrong on the platform, and its reports: the administrators' feed, pushed by systemEvents" })
export class SystemEvent {
  @Field(() => ID) eventId!: string;
  @Field({ description: 'The routing key it came from, e.g. system.error.critical' }) type!: string;
  @Field(() => ID, { nullable: true, description: 'The user concerned, when the platform named one' }) userId?: string;
  @Field(() => DateTimeScalar) occurredAt!: string;
  @Field(() => SystemEventKind) kind!: keyof typeof SystemEventKind;
  @Field({ nullable: true, description: 'CRITICAL, HIGH, MEDIUM, LOW for errors' }) severity?: string;
  @Field({ nullable: true }) serviceName?: string;
  @Field({ nullable: true }) errorCode?: string;
  @Field({ nullable: true, description: 'Never with a stack trace' }) message?: string;
  @Field(() => JsonScalar, { nullable: true, description: 'The report or context; stackTrace, e-mails and traces removed' }) data?: Record<
    string,
    unknown
  >;
}

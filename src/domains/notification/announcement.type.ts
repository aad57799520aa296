import { Field, ID, ObjectType } from 'type-graphql';
import { DateTimeScalar } from '../shared/date-time.scalar';

@ObjectType({ description: 'An announcement, accepted: it reaches every matching connected user on notifications' })
export class Announcement {
  @Field(() => ID, { description: 'The eventId subscribers receive it with' }) eventId!: string;
  @Field(() => DateTimeScalar) createdAt!: Date;
}

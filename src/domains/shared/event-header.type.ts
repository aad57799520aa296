import { Field, ID, InterfaceType } from 'type-graphql';
import { DateTimeScalar } from './date-time.scalar';

/** The fields every pushed event carries (docs/api.md#subscriptions). */
@InterfaceType({ description: 'Fields every subscription event carries' })
export abstract class RealtimeEvent {
  @Field(() => ID, { description: 'Unique per event; the same on redelivery. De-duplicate by it.' })
  eventId!: string;

  @Field({ description: 'The routing key the event came from, e.g. device.started' })
  type!: string;

  @Field(() => ID)
  userId!: string;

  @Field(() => DateTimeScalar, { description: 'When it happened on the platform' })
  occurredAt!: string;
}

import { Field, ID, ObjectType } from 'type-graphql';
import { RealtimeEvent } from '../shared/event-header.type';

@ObjectType({ implements: RealtimeEvent, description: 'A paid order, pushed by orderCompleted' })
export class OrderCompletedEvent extends RealtimeEvent {
  @Field(() => ID) orderId!: string;
  @Field({ nullable: true, description: 'Decimal string exactly as the platform sent it, e.g. "59.90"' })
  amount?: string;
  @Field(() => ID, { nullable: true }) deviceId?: string;
  @Field(() => ID, { nullable: true }) planId?: string;
}

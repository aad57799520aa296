import { Field, ID, ObjectType } from 'type-graphql';
import type { OrderEntity } from '../../contracts/entities';
import { RealtimeEvent } from '../shared/event-header.type';
import { Order } from './order.type';

@ObjectType({ implements: RealtimeEvent, description: 'A paid order, pushed by orderCompleted' })
export class OrderCompletedEvent extends RealtimeEvent {
  @Field(() => ID) orderId!: string;
  @Field({ nullable: true, description: 'Decimal string exactly as the platform sent it, e.g. "59.90"' })
  amount?: string;
  @Field(() => ID, { nullable: true }) deviceId?: string;
  @Field(() => ID, { nullable: true }) planId?: string;
  @Field(() => Order, {
    nullable: true,
    description:
      'The order as it stands after this event, as order(id) returns it (updates a normalized cache by itself). Null only without a read model.',
  })
  // The read model's row as JSON (contracts/entities.ts), the GraphQL type Order.
  order?: OrderEntity | null;
}

import { Field, ID, ObjectType } from 'type-graphql';
import type { OrderEntity } from '../../contracts/entities';
import { RealtimeEvent } from '../shared/event-header.type';
import { Order, OrderStatus } from './order.type';

@ObjectType({ implements: RealtimeEvent, description: "A change of an order's status, pushed by orderStatusChanged" })
export class OrderStatusEvent extends RealtimeEvent {
  @Field(() => ID) orderId!: string;
  @Field(() => OrderStatus) status!: OrderStatus;
  @Field(() => OrderStatus, { nullable: true, description: 'The status before, when the platform said' })
  previousStatus?: OrderStatus;
  @Field({ nullable: true, description: 'Decimal string exactly as the platform sent it, e.g. "59.90"' })
  amount?: string;
  @Field({ nullable: true, description: 'Why (cancellation, refund, failure), as the platform sent it' }) reason?: string;
  @Field(() => ID, { nullable: true }) deviceId?: string;
  @Field(() => ID, { nullable: true }) planId?: string;
  @Field(() => Order, {
    nullable: true,
    description:
      'The order as it stands after this event, as order(id) returns it (updates a normalized cache by itself). statusHistory cannot be selected here. Null only without a read model.',
  })
  // The read model's row as JSON (contracts/entities.ts), the GraphQL type Order.
  order?: OrderEntity | null;
}

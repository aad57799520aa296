import { Field, ID, ObjectType } from 'type-graphql';
import { RealtimeEvent } from '../shared/event-header.type';
import { OrderStatus } from './order.type';

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
}

import { Field, ID, ObjectType } from 'type-graphql';
import { DateTimeScalar } from '../shared/date-time.scalar';
import { OrderStatus } from './order.type';

@ObjectType({ description: "One change of an order's status, as an event announced it" })
export class OrderStatusChange {
  @Field(() => ID, { description: 'The event that announced it' }) eventId!: string;
  @Field(() => OrderStatus) status!: OrderStatus;
  @Field(() => OrderStatus, { nullable: true }) previousStatus!: OrderStatus | null;
  @Field(() => String, { nullable: true }) reason!: string | null;
  @Field(() => DateTimeScalar) occurredAt!: Date;
}

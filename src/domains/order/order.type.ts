import { Field, ID, Int, ObjectType, registerEnumType } from 'type-graphql';
import { connectionTypes } from '../shared/connection';
import { DateTimeScalar } from '../shared/date-time.scalar';

/**
 * Lifecycle state of a billing order: a const object with a string-union type rather than a TS enum (as `DeviceStatus`),
 * so the Prisma row's status, the same union, compares with it and needs no cast.
 */
export const OrderStatus = {
  PENDING: 'PENDING',
  COMPLETED: 'COMPLETED',
  CANCELLED: 'CANCELLED',
  PAID: 'PAID',
  REFUNDED: 'REFUNDED',
  FAILED: 'FAILED',
} as const;
export type OrderStatus = (typeof OrderStatus)[keyof typeof OrderStatus];
registerEnumType(OrderStatus, { name: 'OrderStatus', description: 'Lifecycle state of a billing order' });

@ObjectType({ description: 'A billing order' })
export class Order {
  @Field(() => ID) id!: string;
  @Field(() => ID) userId!: string;
  @Field(() => OrderStatus) status!: OrderStatus;
  @Field(() => String, { nullable: true, description: 'Decimal string with two places, e.g. "59.90"' })
  amount!: string | null;
  @Field(() => ID, { nullable: true }) deviceId!: string | null;
  @Field(() => ID, { nullable: true }) planId!: string | null;
  @Field(() => DateTimeScalar, { nullable: true }) completedAt!: Date | null;
  @Field(() => DateTimeScalar, { nullable: true }) cancelledAt!: Date | null;
  @Field(() => String, { nullable: true, description: 'Why the last status change happened (cancellation, refund, failure)' })
  statusReason!: string | null;
  @Field(() => Int) version!: number;
  @Field(() => DateTimeScalar) createdAt!: Date;
  @Field(() => DateTimeScalar) updatedAt!: Date;
}

export const { EdgeType: OrderEdge, ConnectionType: OrderConnection } = connectionTypes('Order', Order);

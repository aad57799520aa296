import { Arg, ID, Resolver, Root, Subscription } from 'type-graphql';
import type { OrderCompletedEventMessage, OrderStatusEventMessage } from '../../contracts/events';
import { OrderStatusEvent } from './order-status-event.type';
import { AFTER_DESCRIPTION, idArg, subscribeToFamily } from '../shared/subscription';
import { OrderCompletedEvent } from './order-event.type';

@Resolver()
export class OrderEventResolver {
  @Subscription(() => OrderCompletedEvent, {
    description:
      "A user's completed orders (order.completed, billing.order.completed). userId defaults to the caller; administrators may pass any id, or omit it for every user's. after resumes after the last eventId received.",
    subscribe: ({ args, context }) =>
      subscribeToFamily(context, 'order', {
        field: 'orderCompleted',
        userId: idArg(args, 'userId'),
        after: idArg(args, 'after'),
      }),
  })
  orderCompleted(
    @Root() event: OrderCompletedEventMessage,
    @Arg('userId', () => ID, { nullable: true }) _userId?: string,
    @Arg('after', () => ID, { nullable: true, description: AFTER_DESCRIPTION }) _after?: string,
  ): OrderCompletedEvent {
    return event;
  }

  @Subscription(() => OrderStatusEvent, {
    description:
      "Status changes of a user's orders (order.* and billing.order.*: paid, completed, cancelled, refunded, failed). Never coalesced. userId defaults to the caller; administrators may pass any id, or omit it for every user's. orderId narrows to one order. after resumes after the last eventId received.",
    subscribe: ({ args, context }) =>
      subscribeToFamily(context, 'orderStatus', {
        field: 'orderStatusChanged',
        userId: idArg(args, 'userId'),
        orderId: idArg(args, 'orderId'),
        after: idArg(args, 'after'),
      }),
  })
  orderStatusChanged(
    @Root() event: OrderStatusEventMessage,
    @Arg('userId', () => ID, { nullable: true }) _userId?: string,
    @Arg('orderId', () => ID, { nullable: true }) _orderId?: string,
    @Arg('after', () => ID, { nullable: true, description: AFTER_DESCRIPTION }) _after?: string,
  ): OrderStatusEvent {
    return event;
  }
}

import { Arg, ID, Resolver, Root, Subscription } from 'type-graphql';
import type { OrderCompletedEventMessage } from '../../contracts/events';
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
}

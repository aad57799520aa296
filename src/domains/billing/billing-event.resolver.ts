import { Arg, ID, Resolver, Root, Subscription } from 'type-graphql';
import type { BillingEventMessage } from '../../contracts/events';
import { AFTER_DESCRIPTION, idArg, subscribeToFamily } from '../shared/subscription';
import { BillingEvent } from './billing-event.type';

@Resolver()
export class BillingEventResolver {
  @Subscription(() => BillingEvent, {
    description:
      "A user's payments, refunds, invoices and balance notices (billing.*). Never coalesced. userId defaults to the caller; administrators may pass any id, or omit it for every user's. after resumes after the last eventId received.",
    subscribe: ({ args, context }) =>
      subscribeToFamily(context, 'billing', {
        field: 'billingChanged',
        userId: idArg(args, 'userId'),
        after: idArg(args, 'after'),
      }),
  })
  billingChanged(
    @Root() event: BillingEventMessage,
    @Arg('userId', () => ID, { nullable: true }) _userId?: string,
    @Arg('after', () => ID, { nullable: true, description: AFTER_DESCRIPTION }) _after?: string,
  ): BillingEvent {
    return event;
  }
}

import { Field, ID, Int, ObjectType, registerEnumType } from 'type-graphql';
import { BILLING_KINDS } from '../../contracts/events';
import { RealtimeEvent } from '../shared/event-header.type';

export const BillingEventKind = Object.fromEntries(BILLING_KINDS.map((kind) => [kind, kind])) as {
  [K in (typeof BILLING_KINDS)[number]]: K;
};
registerEnumType(BillingEventKind, { name: 'BillingEventKind', description: "What happened to a user's billing" });

@ObjectType({
  implements: RealtimeEvent,
  description: 'A payment, refund, invoice or balance change, pushed by billingChanged. Money as decimal strings exactly as sent.',
})
export class BillingEvent extends RealtimeEvent {
  @Field(() => BillingEventKind) kind!: keyof typeof BillingEventKind;
  @Field({ nullable: true }) amount?: string;
  @Field({ nullable: true, description: 'The balance after it (newBalance / currentBalance)' }) balance?: string;
  @Field({ nullable: true, description: 'The low-balance threshold' }) threshold?: string;
  @Field(() => ID, { nullable: true }) paymentId?: string;
  @Field(() => ID, { nullable: true }) orderId?: string;
  @Field(() => ID, { nullable: true }) invoiceId?: string;
  @Field({ nullable: true }) paymentMethod?: string;
  @Field({ nullable: true }) reason?: string;
  @Field({ nullable: true }) overdueAmount?: string;
  @Field(() => Int, { nullable: true }) overdueDays?: number;
}

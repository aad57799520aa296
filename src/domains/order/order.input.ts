import { ArgsType, Field, ID, Int } from 'type-graphql';
import { OrderStatus } from './order.type';

@ArgsType()
export class OrdersArgs {
  @Field(() => ID, { nullable: true, description: 'Defaults to the caller; administrators may omit it for every user' })
  userId?: string | null;
  @Field(() => OrderStatus, { nullable: true }) status?: OrderStatus | null;
  @Field(() => Int, { nullable: true, description: 'Page size, 1 to 100 (default 20)' }) first?: number | null;
  @Field(() => String, { nullable: true, description: 'The endCursor of the previous page' }) after?: string | null;
}

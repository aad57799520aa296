import { Arg, Args, Authorized, Ctx, FieldResolver, ID, Mutation, Query, Resolver, Root } from 'type-graphql';
import { OrderStatusChange } from './order-status-change.type';
import { requireUser, resolveTargetUser } from '../../auth/authorization';
import type { GraphQLContext } from '../../contracts/context';
import { pageRequest, type Connection } from '../shared/connection';
import { OrdersArgs } from './order.input';
import { Order, OrderConnection } from './order.type';

@Resolver(() => Order)
export class OrderResolver {
  @Authorized()
  @Query(() => OrderConnection, { description: "A user's orders, newest first" })
  orders(@Args(() => OrdersArgs) args: OrdersArgs, @Ctx() context: GraphQLContext): Promise<Connection<Order>> {
    const page = pageRequest(args.first, args.after);
    const userId = resolveTargetUser(context, args.userId, { allowAll: true });
    return context.services.orders.list({ userId, status: args.status }, page);
  }

  @Authorized()
  @Query(() => Order, { description: "One order; NOT_FOUND when it is not the caller's (administrators: anyone's)" })
  order(@Arg('id', () => ID) id: string, @Ctx() context: GraphQLContext): Promise<Order> {
    return context.services.orders.get(requireUser(context), id);
  }

  @FieldResolver(() => [OrderStatusChange], { description: 'Every status change the gateway learnt, oldest first (at most 1,000)' })
  statusHistory(@Root() order: Order, @Ctx() context: GraphQLContext): Promise<OrderStatusChange[]> {
    return context.services.orders.statusHistory(order.id);
  }

  @Authorized('admin')
  @Mutation(() => Order, { description: 'Administrators: PENDING -> COMPLETED; emits order.completed' })
  completeOrder(@Arg('id', () => ID) id: string, @Ctx() context: GraphQLContext): Promise<Order> {
    return context.services.orders.complete(requireUser(context), id);
  }

  @Authorized()
  @Mutation(() => Order, { description: 'The owner or an administrator: PENDING -> CANCELLED; emits order.cancelled' })
  cancelOrder(@Arg('id', () => ID) id: string, @Ctx() context: GraphQLContext): Promise<Order> {
    return context.services.orders.cancel(requireUser(context), id);
  }
}

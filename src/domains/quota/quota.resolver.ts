import { Arg, Authorized, Ctx, ID, Mutation, Query, Resolver, Root, Subscription } from 'type-graphql';
import { resolveTargetUser } from '../../auth/authorization';
import type { GraphQLContext } from '../../contracts/context';
import type { QuotaEventMessage } from '../../contracts/events';
import { AFTER_DESCRIPTION, idArg, subscribeToFamily } from '../shared/subscription';
import { QuotaUsageDeltaInput, RenewQuotaInput, UpdateQuotaInput } from './quota.input';
import { Quota, QuotaEvent } from './quota.type';

@Resolver()
export class QuotaResolver {
  @Authorized()
  @Query(() => Quota, { nullable: true, description: "A user's quota; userId defaults to the caller" })
  async quota(
    @Arg('userId', () => ID, { nullable: true }) userId: string | null | undefined,
    @Ctx() context: GraphQLContext,
  ): Promise<Quota | null> {
    const target = resolveTargetUser(context, userId, { allowAll: false }) as string;
    return context.services.quota.findByUser(target);
  }

  @Authorized('admin')
  @Mutation(() => Quota, { description: "Administrators: change a user's quota; emits quota.updated" })
  async updateQuota(
    @Arg('userId', () => ID) userId: string,
    @Arg('input', () => UpdateQuotaInput) input: UpdateQuotaInput,
    @Ctx() context: GraphQLContext,
  ): Promise<Quota> {
    return context.services.quota.update(userId, input);
  }

  @Authorized('admin')
  @Mutation(() => Quota, {
    description:
      'Administrators: takes resources; past a hard limit (devices, CPU, memory, storage) is BAD_USER_INPUT. Emits quota.deducted, and quota.exceeded when usage crosses 100%',
  })
  async deductQuota(
    @Arg('userId', () => ID) userId: string,
    @Arg('input', () => QuotaUsageDeltaInput) input: QuotaUsageDeltaInput,
    @Ctx() context: GraphQLContext,
  ): Promise<Quota> {
    return context.services.quota.deduct(userId, input);
  }

  @Authorized('admin')
  @Mutation(() => Quota, { description: 'Administrators: gives resources back (not below zero); emits quota.restored' })
  async restoreQuota(
    @Arg('userId', () => ID) userId: string,
    @Arg('input', () => QuotaUsageDeltaInput) input: QuotaUsageDeltaInput,
    @Ctx() context: GraphQLContext,
  ): Promise<Quota> {
    return context.services.quota.restore(userId, input);
  }

  @Authorized('admin')
  @Mutation(() => Quota, {
    description: 'Administrators: extends validUntil, resets monthly usage, reactivates; emits quota.renewed',
  })
  async renewQuota(
    @Arg('userId', () => ID) userId: string,
    @Arg('input', () => RenewQuotaInput) input: RenewQuotaInput,
    @Ctx() context: GraphQLContext,
  ): Promise<Quota> {
    return context.services.quota.renew(userId, input);
  }

  @Subscription(() => QuotaEvent, {
    description:
      "Changes to a user's quota. userId defaults to the caller; administrators may pass any id, or omit it for every user's events. after resumes after the last eventId received.",
    subscribe: ({ args, context }) =>
      subscribeToFamily(context, 'quota', {
        field: 'quotaChanged',
        userId: idArg(args, 'userId'),
        after: idArg(args, 'after'),
      }),
  })
  quotaChanged(
    @Root() event: QuotaEventMessage,
    @Arg('userId', () => ID, { nullable: true }) _userId?: string,
    @Arg('after', () => ID, { nullable: true, description: AFTER_DESCRIPTION }) _after?: string,
  ): QuotaEvent {
    return event;
  }
}

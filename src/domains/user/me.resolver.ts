import { Authorized, Ctx, Query, Resolver } from 'type-graphql';
import { requireUser } from '../../auth/authorization';
import type { GraphQLContext } from '../../contracts/context';
import { Me } from './me.type';

@Resolver()
export class MeResolver {
  @Authorized()
  @Query(() => Me, { description: 'Who the token says the caller is' })
  me(@Ctx() context: GraphQLContext): Me {
    const user = requireUser(context);
    return {
      id: user.id,
      roles: [...user.roles],
      isAdmin: user.isAdmin,
      tenantId: user.tenantId ?? null,
      username: user.username ?? null,
    };
  }
}

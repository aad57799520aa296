/**
 * `renewSession` (in-band token renewal on the connection the mutation runs on) and
 * `revokeSessions` (administrators). docs/transports.md#token-renewal, #revocation.
 */
import { Arg, Authorized, Ctx, ID, Mutation, Resolver } from 'type-graphql';
import { requireAdmin, requireUser } from '../../auth/authorization';
import { stripBearer } from '../../auth/jwt';
import type { GraphQLContext } from '../../contracts/context';
import { BadUserInputError, ForbiddenError } from '../../contracts/errors';
import { SessionRenewal, SessionRevocation } from './session.type';

/** Longer than any JWT the platform issues; refused before it reaches the verifier. */
const MAX_TOKEN_LENGTH = 8_192;

@Resolver()
export class SessionResolver {
  @Authorized()
  @Mutation(() => SessionRenewal, {
    description:
      "Hands the connection this operation runs on (a graphql-ws socket) a fresh token for the same user: open subscriptions keep running and the connection now ends at the new token's exp. FORBIDDEN for another user's, an invalid, expired or revoked token (the connection keeps its current one), and over plain HTTP, which has no connection to renew.",
  })
  async renewSession(@Arg('token', () => String) token: string, @Ctx() context: GraphQLContext): Promise<SessionRenewal> {
    requireUser(context);
    if (token.length > MAX_TOKEN_LENGTH) throw new BadUserInputError(`token must be at most ${MAX_TOKEN_LENGTH} characters`);
    const { connection } = context;
    if (!connection) {
      throw new ForbiddenError(
        'renewSession renews a connection: send it over the WebSocket whose token it renews (HTTP requests carry their own token)',
      );
    }
    return { expiresAt: new Date(await connection.renew(stripBearer(token))) };
  }

  @Authorized('admin')
  @Mutation(() => SessionRevocation, {
    description:
      "Administrators: ends every open socket and stream of this user on every instance within a second (sockets close with 4403) and refuses the user's tokens issued at or before now until they expire.",
  })
  async revokeSessions(@Arg('userId', () => ID) userId: string, @Ctx() context: GraphQLContext): Promise<SessionRevocation> {
    requireAdmin(context);
    if (userId.length === 0 || userId.length > 200) throw new BadUserInputError('userId must be 1 to 200 characters');
    return { userId, revokedAt: new Date(await context.services.sessions.revoke(userId)) };
  }
}

/**
 * The one place that decides who may do what (docs/api.md#authentication-and-authorization). Resolvers call these; the
 * type-graphql `authChecker` uses them for `@Authorized()`.
 */
import type { AuthChecker } from 'type-graphql';
import { ForbiddenError, UnauthenticatedError } from '../contracts/errors';
import type { AuthUser } from './auth-user';
import type { GraphQLContext } from '../contracts/context';

export function requireUser(context: GraphQLContext): AuthUser {
  if (!context.user) throw new UnauthenticatedError();
  return context.user;
}

export function requireAdmin(context: GraphQLContext): AuthUser {
  const user = requireUser(context);
  if (!user.isAdmin) throw new ForbiddenError('Administrators only');
  return user;
}

/**
 * Whose data a query or subscription reads: `userId` defaults to the caller; another user's id
 * is allowed only for administrators. Returns `null` for "every user" (administrators who
 * omitted `userId`, when `allowAll`).
 */
export function resolveTargetUser(
  context: GraphQLContext,
  requested: string | null | undefined,
  options: { allowAll: boolean },
): string | null {
  const user = requireUser(context);
  if (requested === undefined || requested === null) {
    return user.isAdmin && options.allowAll ? null : user.id;
  }
  if (requested !== user.id && !user.isAdmin) {
    throw new ForbiddenError('You may only access your own data; omit userId or pass your own id');
  }
  return requested;
}

/** `@Authorized()` = any authenticated caller; `@Authorized('admin')` = administrators. */
export const authChecker: AuthChecker<GraphQLContext> = ({ context }, roles) => {
  if (roles.includes('admin')) requireAdmin(context);
  else requireUser(context);
  return true;
};

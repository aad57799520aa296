/**
 * Ownership checks for entities read or changed by id. Another user's entity answers exactly as
 * a missing one (NOT_FOUND, same message), so ids cannot be probed for existence.
 */
import type { AuthUser } from '../../auth/auth-user';
import { NotFoundError } from '../../contracts/errors';

export function visibleTo<T extends { userId: string }>(actor: AuthUser, row: T | null | undefined, what: string, id: string): T {
  if (!row || (row.userId !== actor.id && !actor.isAdmin)) throw new NotFoundError(`No ${what} with id ${id}`);
  return row;
}

/** Who the token says the caller is: the claims rules (docs/api.md#authentication-and-authorization). */
export type { AuthUser } from '../contracts/context';

const ADMIN_ROLES = new Set(['admin', 'super_admin']);

export function isAdminClaims(roles: readonly string[], isSuperAdmin: unknown): boolean {
  return isSuperAdmin === true || roles.some((role) => ADMIN_ROLES.has(role));
}

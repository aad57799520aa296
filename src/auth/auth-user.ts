/** The caller, as the verified token describes it (CONTRACT §3). */
export interface AuthUser {
  /** The token's `sub`. */
  readonly id: string;
  readonly roles: readonly string[];
  readonly tenantId?: string;
  readonly username?: string;
  /** `roles` has `admin` or `super_admin`, or `isSuperAdmin: true`. */
  readonly isAdmin: boolean;
  /** Token expiry, epoch milliseconds. */
  readonly expiresAt: number;
}

const ADMIN_ROLES = new Set(['admin', 'super_admin']);

export function isAdminClaims(roles: readonly string[], isSuperAdmin: unknown): boolean {
  return isSuperAdmin === true || roles.some((role) => ADMIN_ROLES.has(role));
}

/**
 * Session revocation (docs/transports.md#revocation): after `revokeSessions(userId)` or the
 * platform's `user.sessions.revoked` / `auth.sessions.revoked`, every token of that user issued
 * at or before the revocation's second is refused until it expires, on HTTP, at connect and at
 * renewal. JWT `iat` has one-second resolution, so a token minted in the same second as the
 * revocation is refused too (the safe side: a stolen token minted just before cannot slip
 * through); a token without `iat` cannot prove it is newer and is refused as well.
 */
import type { AuthUser } from '../contracts/context';
import type { RevocationStore } from '../contracts/ports';
import { TokenError, type TokenVerifier } from './jwt';

/**
 * How long a revocation is retained (Redis key expiry): tokens must not live longer than this,
 * or one issued before the revocation becomes usable again once it is forgotten. Seven days is
 * far beyond the platform's access tokens (minutes to hours).
 */
export const REVOCATION_RETENTION_MS = 7 * 24 * 3_600_000;

/** True when `user`'s token predates the latest revocation of its user (`revokedAt`, epoch ms). */
export function issuedBeforeRevocation(user: AuthUser, revokedAt: number | undefined): boolean {
  if (revokedAt === undefined) return false;
  if (user.issuedAt === undefined) return true;
  return Math.floor(user.issuedAt / 1000) <= Math.floor(revokedAt / 1000);
}

/** A verifier that also refuses revoked tokens, with the same `TokenError` as any bad token. */
export function revocationAwareVerifier(verifier: TokenVerifier, revocations: RevocationStore): TokenVerifier {
  return {
    async verify(token) {
      const user = await verifier.verify(token);
      if (issuedBeforeRevocation(user, await revocations.revokedAt(user.id))) throw new TokenError('token revoked');
      return user;
    },
  };
}

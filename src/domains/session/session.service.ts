/**
 * Sessions as an administrator sees them: revoking one user's, through the shared
 * `RevocationStore` (every instance ends that user's connections; docs/transports.md#revocation).
 */
import type { RevocationStore } from '../../contracts/ports';

export interface SessionService {
  /** Records the revocation; resolves with its time (epoch ms). */
  revoke(userId: string): Promise<number>;
}

declare module '../../contracts/context' {
  interface DomainServices {
    readonly sessions: SessionService;
  }
}

export function createSessionService(revocations: RevocationStore): SessionService {
  return { revoke: (userId) => revocations.revoke(userId) };
}

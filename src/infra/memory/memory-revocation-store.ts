/** Revoked sessions on one instance (no Redis): the in-process `RevocationStore`; forgotten on restart. */
import type { RevocationStore } from '../../contracts/ports';

export class MemoryRevocationStore implements RevocationStore {
  private readonly revoked = new Map<string, { at: number; until: number }>();
  private readonly listeners: ((userId: string, revokedAt: number) => void)[] = [];

  constructor(private readonly retentionMs: number) {}

  async revoke(userId: string): Promise<number> {
    const at = Date.now();
    this.revoked.set(userId, { at, until: at + this.retentionMs });
    for (const listener of this.listeners) listener(userId, at);
    return at;
  }

  async revokedAt(userId: string): Promise<number | undefined> {
    const entry = this.revoked.get(userId);
    if (entry && entry.until <= Date.now()) this.revoked.delete(userId);
    return entry && entry.until > Date.now() ? entry.at : undefined;
  }

  onRevoked(listener: (userId: string, revokedAt: number) => void): void {
    this.listeners.push(listener);
  }

  async close(): Promise<void> {
    this.listeners.length = 0;
  }
}

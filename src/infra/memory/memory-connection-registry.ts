/** Open connections per user on one instance (no Redis): the in-process `ConnectionRegistry`. */
import type { ConnectionRegistry } from '../../contracts/ports';

export class MemoryConnectionRegistry implements ConnectionRegistry {
  private readonly sockets = new Map<string, Set<string>>();

  constructor(private readonly max: number) {}

  async acquire(userId: string, socketId: string): Promise<boolean> {
    const mine = this.sockets.get(userId) ?? new Set<string>();
    if (mine.size >= this.max) return false;
    mine.add(socketId);
    this.sockets.set(userId, mine);
    return true;
  }

  async release(userId: string, socketId: string): Promise<void> {
    const mine = this.sockets.get(userId);
    if (!mine) return;
    mine.delete(socketId);
    if (mine.size === 0) this.sockets.delete(userId);
  }

  async close(): Promise<void> {
    this.sockets.clear();
  }
}

/**
 * The connection's state as a page shows it. graphql-ws reports sockets opening and closing; this
 * turns them into the four states a status badge needs, kept in a BehaviorSubject so a late
 * subscriber (a component mounting) gets the current state at once.
 */
import { BehaviorSubject, type Observable } from 'rxjs';

export type ConnectionState =
  /** The first connection is being made. */
  | { readonly status: 'connecting' }
  /** Acknowledged by the gateway: subscriptions are live. */
  | { readonly status: 'connected' }
  /** Lost; trying again (`attempt` counts from 1 since the last good connection). */
  | { readonly status: 'reconnecting'; readonly attempt: number }
  /** Not trying: the browser is offline, the client was disposed, or the gateway refused for good. */
  | { readonly status: 'offline'; readonly reason: string };

export class ConnectionStateStore {
  private readonly subject = new BehaviorSubject<ConnectionState>({ status: 'connecting' });
  private attempt = 0;
  private everConnected = false;

  get current(): ConnectionState {
    return this.subject.getValue();
  }

  readonly observable: Observable<ConnectionState> = this.subject.asObservable();

  connecting(isRetry: boolean): void {
    if (this.current.status === 'offline' && this.current.reason === 'disposed') return;
    if (!isRetry && !this.everConnected) return this.set({ status: 'connecting' });
    this.attempt++;
    this.set({ status: 'reconnecting', attempt: this.attempt });
  }

  connected(): void {
    this.attempt = 0;
    this.everConnected = true;
    this.set({ status: 'connected' });
  }

  /** The socket closed; graphql-ws retries next (`connecting(true)`), unless it gave up. */
  closed(): void {
    if (this.current.status === 'connected') this.set({ status: 'reconnecting', attempt: Math.max(1, this.attempt) });
  }

  offline(reason: string): void {
    this.set({ status: 'offline', reason });
  }

  complete(): void {
    this.subject.complete();
  }

  private set(state: ConnectionState): void {
    const now = this.current;
    if (now.status === state.status && (now as { attempt?: number }).attempt === (state as { attempt?: number }).attempt) return;
    this.subject.next(state);
  }
}

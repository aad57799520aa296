/**
 * graphql-ws clients wrapped by the README's `withResume`, each subscribed to one user's
 * `orderCompleted` and keeping every eventId it receives, so a test can count lost, duplicated
 * and out-of-order events per user. A client's reconnects wait on `hold()` (a gate the test
 * opens), so events can be published while it is away. Each client is registered for teardown
 * when created; `disposeResumingClients()` in `afterAll` opens every gate first, then closes them.
 */
import { createClient, type Client } from 'graphql-ws';
import WebSocket from 'ws';
import { token } from './clients';
import { track, type Tracked } from './teardown';
import { withResume } from './resumable-client';
import { deferred, within, type Deferred } from './wait';

export interface ResumingClient {
  readonly user: string;
  /** EventIds in the order received (duplicates kept). */
  readonly received: string[];
  /** Subscription errors (HISTORY_EXPIRED would land here). */
  readonly errors: unknown[];
  /** Close codes seen. */
  readonly closes: number[];
  /** Drops the socket at once (4499); the client reconnects, with `after`, once the gate opens. */
  terminate(): void;
  /** Holds the next reconnects until `release()`. */
  hold(): void;
  release(): void;
}

const opened: { readonly client: Client; readonly tracked: Tracked }[] = [];
const gates = new Set<Deferred<void>>();

const SUBSCRIPTION = 'subscription ($after: ID) { orderCompleted(after: $after) { eventId } }';

/** `roles: ['admin']` makes an administrator, whose subscription (no userId) takes every user's events. */
export function resumingClient(url: () => string, user: string, options: { roles?: string[] } = {}): ResumingClient {
  let gate: Deferred<void> | undefined;
  const received: string[] = [];
  const errors: unknown[] = [];
  const closes: number[] = [];
  const client = withResume(
    createClient({
      url,
      webSocketImpl: WebSocket,
      connectionParams: () => ({ authorization: `Bearer ${token(user, { roles: options.roles })}` }),
      retryAttempts: 50,
      retryWait: async () => {
        await (gate?.promise ?? new Promise<void>((resolve) => setTimeout(resolve, 200)));
      },
      on: { closed: (event) => void closes.push((event as { code: number }).code) },
    }),
  );
  opened.push({
    client,
    tracked: track(`resuming client of ${user}`, () => {
      // A held reconnect would keep dispose() waiting: open the gate first.
      gate?.resolve();
      return client.dispose();
    }),
  });
  client.subscribe(
    { query: SUBSCRIPTION },
    {
      next: (result) => {
        if (result.errors) errors.push(result.errors);
        const id = (result.data as { orderCompleted?: { eventId?: string } } | null | undefined)?.orderCompleted?.eventId;
        if (typeof id === 'string') received.push(id);
      },
      error: (error) => void errors.push(error),
      complete: () => undefined,
    },
  );
  return {
    user,
    received,
    errors,
    closes,
    terminate: () => client.terminate(),
    hold() {
      gate = deferred<void>();
      gates.add(gate);
    },
    release() {
      gate?.resolve();
      if (gate) gates.delete(gate);
      gate = undefined;
    },
  };
}

/** Lost, duplicated and out-of-order counts of `received` against `expected` (one user's order). */
export function tally(expected: readonly string[], received: readonly string[]): { lost: number; duplicated: number; reordered: number } {
  const seen = new Set<string>();
  let duplicated = 0;
  let reordered = 0;
  const rank = new Map(expected.map((id, i) => [id, i]));
  let last = -1;
  for (const id of received) {
    if (seen.has(id)) {
      duplicated++;
      continue;
    }
    seen.add(id);
    const r = rank.get(id) ?? -1;
    if (r < last) reordered++;
    last = Math.max(last, r);
  }
  const lost = expected.filter((id) => !seen.has(id)).length;
  return { lost, duplicated, reordered };
}

export async function disposeResumingClients(): Promise<void> {
  for (const gate of gates) gate.resolve();
  gates.clear();
  const clients = opened.splice(0);
  await Promise.all(
    clients.map(({ client, tracked }) => {
      tracked.untrack();
      return within(Promise.resolve(client.dispose()), 'a client to dispose', 5_000).catch(() => undefined);
    }),
  );
}

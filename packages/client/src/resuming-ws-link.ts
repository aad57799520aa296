/**
 * Subscriptions over graphql-ws that resume. Apollo's GraphQLWsLink hands graphql-ws a payload
 * once; on every reconnect graphql-ws sends that same payload object again. This link keeps, per
 * active subscription, the last `eventId` received and writes it into that payload's `after`
 * variable, so every reconnect (network blip, 1001 deploy, 4403 token refresh, a restarted
 * gateway) subscribes with `after` and the gateway replays what was missed. Delivery is at least
 * once: an `eventId` already passed on is dropped here. `HISTORY_EXPIRED` (the gateway no longer
 * retains `after`) is reported to `onHistoryExpired` and the subscription starts again live,
 * without `after`: the page must refetch its queries (the default in createRealtimeClient).
 */
import { ApolloLink, CombinedGraphQLErrors } from '@apollo/client';
import { Kind, print, type DocumentNode, type GraphQLFormattedError } from 'graphql';
import type { Client } from 'graphql-ws';
import { Observable } from 'rxjs';

/** The gateway's error code for an `after` it no longer retains (docs/resuming.md). */
export const HISTORY_EXPIRED = 'HISTORY_EXPIRED';

/** The typed signal: this subscription lost events it cannot replay; refetch what it shows. */
export interface HistoryExpired {
  readonly type: typeof HISTORY_EXPIRED;
  readonly operationName: string | undefined;
  readonly variables: Readonly<Record<string, unknown>>;
  /** The `after` the gateway no longer had. */
  readonly after: string | undefined;
}

/** eventIds remembered per subscription for de-duplication (a redelivery arrives soon after the first copy). */
const SEEN_IDS = 1_000;

function declaresAfter(document: DocumentNode): boolean {
  return document.definitions.some(
    (d) => d.kind === Kind.OPERATION_DEFINITION && (d.variableDefinitions ?? []).some((v) => v.variable.name.value === 'after'),
  );
}

/** The eventId of a subscription result: its one root field's `eventId`. */
function eventIdOf(result: { readonly data?: unknown }): string | undefined {
  const data = result.data as Record<string, unknown> | null | undefined;
  if (!data) return undefined;
  for (const value of Object.values(data)) {
    const id = (value as { eventId?: unknown } | null)?.eventId;
    if (typeof id === 'string') return id;
  }
  return undefined;
}

const isHistoryExpired = (errors: readonly GraphQLFormattedError[] | undefined): boolean =>
  (errors ?? []).some((e) => e.extensions?.code === HISTORY_EXPIRED);

export class ResumingWsLink extends ApolloLink {
  /** Last eventId per active subscription (by operation name and variables), for inspection. */
  readonly lastEventIds = new Map<string, string>();

  constructor(
    private readonly client: Client,
    private readonly onHistoryExpired: (signal: HistoryExpired) => void,
  ) {
    super();
  }

  override request(operation: ApolloLink.Operation): Observable<ApolloLink.Result> {
    const { query, operationName, extensions } = operation;
    const resumable = declaresAfter(query);
    const text = print(query);
    const key = `${operationName ?? ''} ${JSON.stringify(operation.variables ?? {})}`;
    return new Observable<ApolloLink.Result>((observer) => {
      const seen = new Set<string>();
      // The object graphql-ws re-sends on every reconnect: `after` is updated in place.
      const payload = { query: text, operationName, extensions, variables: { ...(operation.variables ?? {}) } as Record<string, unknown> };
      let dispose: () => void = () => undefined;
      let closed = false;

      // Each (re)start is a generation: the callbacks of a superseded one (the `complete` that
      // follows a HISTORY_EXPIRED result) must not end the subscription that replaced it.
      let generation = 0;

      const expired = () => {
        const after = payload.variables.after as string | undefined;
        delete payload.variables.after;
        this.lastEventIds.delete(key);
        seen.clear();
        this.onHistoryExpired({ type: HISTORY_EXPIRED, operationName, variables: { ...(operation.variables ?? {}) }, after });
        // Live again from now on; what was missed comes from the refetch.
        if (!closed) start();
      };

      const start = () => {
        const mine = ++generation;
        const current = () => mine === generation && !closed;
        const previous = dispose;
        dispose = this.client.subscribe<Record<string, unknown>>(payload, {
          next: (result) => {
            if (!current()) return;
            if (isHistoryExpired(result.errors)) return expired();
            const id = eventIdOf(result);
            if (id !== undefined) {
              if (seen.has(id)) return;
              seen.add(id);
              if (seen.size > SEEN_IDS) seen.delete(seen.values().next().value as string);
              if (resumable) payload.variables.after = id;
              this.lastEventIds.set(key, id);
            }
            observer.next(result as ApolloLink.Result);
          },
          complete: () => {
            if (!current()) return;
            this.lastEventIds.delete(key);
            observer.complete();
          },
          error: (error: unknown) => {
            if (!current()) return;
            if (Array.isArray(error) && isHistoryExpired(error as GraphQLFormattedError[])) return expired();
            this.lastEventIds.delete(key);
            if (error instanceof Error) return observer.error(error);
            if (Array.isArray(error)) return observer.error(new CombinedGraphQLErrors({ errors: error as GraphQLFormattedError[] }));
            const code = (error as { code?: unknown } | null)?.code;
            observer.error(new Error(`Socket closed${typeof code === 'number' ? ` with event ${code}` : ''}`));
          },
        });
        // The expired subscription, if any, is finished with on the gateway's side; release it here.
        previous();
      };
      start();
      return () => {
        closed = true;
        this.lastEventIds.delete(key);
        dispose();
      };
    });
  }
}

/**
 * `createRealtimeClient`: an Apollo Client 4 wired for the gateway. Queries and mutations go over
 * HTTP; subscriptions over graphql-ws, resumed with `after` on every reconnect
 * (./resuming-ws-link.ts). The token comes from `getToken` on every connect and every HTTP
 * request near expiry, and is renewed in band (`renewSession`) a minute before `exp`, so open
 * subscriptions never drop for a token. Events carry their entity (`DeviceStatusEvent.device`,
 * ...) with the same `__typename` and `id` the queries return: the cache updates by itself.
 */
import { ApolloClient, ApolloLink, HttpLink, InMemoryCache } from '@apollo/client';
import { getMainDefinition } from '@apollo/client/utilities';
import { Kind, OperationTypeNode, print } from 'graphql';
import { createClient, type Client } from 'graphql-ws';
import { Subject, from, switchMap, type Observable } from 'rxjs';
import { ConnectionStateStore, type ConnectionState } from './connection-state.js';
import { RenewSessionDocument } from './generated/graphql.js';
import { ResumingWsLink, type HistoryExpired } from './resuming-ws-link.js';

export interface RealtimeClientOptions {
  /** The gateway's GraphQL over HTTP endpoint, e.g. `https://realtime.example.com/graphql`. */
  readonly httpUrl: string;
  /** Its WebSocket endpoint, e.g. `wss://realtime.example.com/graphql`. */
  readonly wsUrl: string;
  /** Returns a valid JWT (from your identity service); called on every connect and before `exp`. */
  readonly getToken: () => string | Promise<string>;
  /** A WebSocket implementation where there is no global one (Node 20: `ws`). */
  readonly webSocketImpl?: unknown;
  /** Renew this long before the token's `exp`. @default 60_000 */
  readonly renewBeforeMs?: number;
  /**
   * Called when a subscription's `after` is no longer retained (events were missed for good).
   * @default refetches every active query (`client.refetchQueries({ include: 'active' })`)
   */
  readonly onHistoryExpired?: (signal: HistoryExpired, client: ApolloClient) => void;
  /** Your own cache (type policies); the default normalizes by `__typename` + `id`. */
  readonly cache?: InMemoryCache;
  /** Longest wait between reconnect attempts. @default 15_000 */
  readonly maxRetryWaitMs?: number;
  /** The fetch HTTP requests go through (a counting or instrumented one). @default globalThis.fetch */
  readonly fetch?: typeof fetch;
}

/** What the client adds to Apollo Client: state, signals, and an end. */
export interface RealtimeControls {
  /** The connection's state now. */
  readonly connectionState: () => ConnectionState;
  /** The connection's state as it changes (the current one first). */
  readonly connectionState$: Observable<ConnectionState>;
  /** HISTORY_EXPIRED, as it happens: refetch what the subscription showed. */
  readonly historyExpired$: Observable<HistoryExpired>;
  /** The last eventId per active subscription (what the next reconnect resumes after). */
  readonly lastEventIds: () => ReadonlyMap<string, string>;
  /** The graphql-ws client underneath. */
  readonly ws: Client;
  /** Closes the socket and stops renewing; the Apollo Client stops too. */
  readonly dispose: () => Promise<void>;
}

export type RealtimeClient = ApolloClient & { readonly realtime: RealtimeControls };

/** `exp` of a JWT in epoch milliseconds, or undefined when it has none (or is no JWT). */
export function tokenExpiry(token: string): number | undefined {
  try {
    const part = token.split('.')[1];
    if (!part) return undefined;
    const json = atob(
      part
        .replace(/-/g, '+')
        .replace(/_/g, '/')
        .padEnd(Math.ceil(part.length / 4) * 4, '='),
    );
    const exp = (JSON.parse(json) as { exp?: unknown }).exp;
    return typeof exp === 'number' ? exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}

export function createRealtimeClient(options: RealtimeClientOptions): RealtimeClient {
  const renewBeforeMs = options.renewBeforeMs ?? 60_000;
  const maxRetryWaitMs = options.maxRetryWaitMs ?? 15_000;
  const state = new ConnectionStateStore();
  const expired = new Subject<HistoryExpired>();
  let token: string | undefined;
  let renewTimer: ReturnType<typeof setTimeout> | undefined;
  let disposed = false;

  /** A token good for at least the renewal margin (HTTP requests reuse it until then). */
  async function freshToken(): Promise<string> {
    const exp = token === undefined ? undefined : tokenExpiry(token);
    if (token !== undefined && (exp === undefined || exp - Date.now() > renewBeforeMs)) return token;
    token = await options.getToken();
    return token;
  }

  const ws = createClient({
    url: options.wsUrl,
    webSocketImpl: options.webSocketImpl,
    lazy: false,
    // A dashboard stays open for hours: never give up, back off to maxRetryWaitMs.
    retryAttempts: Number.POSITIVE_INFINITY,
    shouldRetry: () => !disposed,
    retryWait: async (retries) => {
      const wait = Math.min(maxRetryWaitMs, 250 * 2 ** retries) * (0.5 + Math.random() / 2);
      await new Promise((resolve) => setTimeout(resolve, wait));
    },
    keepAlive: 10_000,
    // On every (re)connect, a token from getToken: after a 4403 the socket comes back with a fresh one.
    connectionParams: async () => {
      token = await options.getToken();
      return { authorization: `Bearer ${token}` };
    },
    on: {
      connecting: (isRetry) => state.connecting(isRetry),
      connected: () => {
        state.connected();
        scheduleRenewal();
      },
      closed: () => {
        clearTimeout(renewTimer);
        if (disposed) state.offline('disposed');
        else if (typeof navigator !== 'undefined' && navigator.onLine === false) state.offline('browser offline');
        else state.closed();
      },
    },
    onNonLazyError: (error) =>
      state.offline(`gave up: ${error instanceof Error ? error.message : String((error as { code?: unknown })?.code ?? error)}`),
  });

  /** In-band renewal over the same socket (docs/transports.md#token-renewal): subscriptions keep running. */
  function scheduleRenewal(): void {
    clearTimeout(renewTimer);
    const exp = token === undefined ? undefined : tokenExpiry(token);
    if (exp === undefined || disposed) return;
    renewTimer = setTimeout(() => void renew(), Math.max(0, exp - Date.now() - renewBeforeMs));
  }

  async function renew(): Promise<void> {
    let fresh: string;
    try {
      fresh = await options.getToken();
    } catch {
      // No token to be had now: the gateway closes the socket at exp (4403) and connecting asks again.
      return;
    }
    ws.subscribe<{ renewSession: { expiresAt: string } }>(
      { query: print(RenewSessionDocument), variables: { token: fresh } },
      {
        next: (result) => {
          // FORBIDDEN keeps the socket's old token; it ends at exp and reconnects with getToken.
          if (result.errors || !result.data) return;
          token = fresh;
          scheduleRenewal();
        },
        error: () => undefined,
        complete: () => undefined,
      },
    );
  }

  // Apollo Client, created below, is what HISTORY_EXPIRED refetches through.
  const holder: { apollo?: ApolloClient } = {};
  const wsLink = new ResumingWsLink(ws, (signal) => {
    expired.next(signal);
    const { apollo } = holder;
    if (!apollo) return;
    if (options.onHistoryExpired) options.onHistoryExpired(signal, apollo);
    else void apollo.refetchQueries({ include: 'active' });
  });

  const auth = new ApolloLink((operation, forward) =>
    from(freshToken()).pipe(
      switchMap((jwt) => {
        operation.setContext(({ headers }: { headers?: Record<string, string> }) => ({
          headers: { ...headers, authorization: `Bearer ${jwt}` },
        }));
        return forward(operation);
      }),
    ),
  );
  const http = ApolloLink.from([auth, new HttpLink({ uri: options.httpUrl, ...(options.fetch ? { fetch: options.fetch } : {}) })]);
  const isSubscription = (operation: ApolloLink.Operation) => {
    const definition = getMainDefinition(operation.query);
    return definition.kind === Kind.OPERATION_DEFINITION && definition.operation === OperationTypeNode.SUBSCRIPTION;
  };

  const apollo = new ApolloClient({ link: ApolloLink.split(isSubscription, wsLink, http), cache: options.cache ?? new InMemoryCache() });

  holder.apollo = apollo;

  if (typeof window !== 'undefined' && typeof window.addEventListener === 'function') {
    window.addEventListener('offline', () => state.offline('browser offline'));
    window.addEventListener('online', () => state.connecting(true));
  }

  const realtime: RealtimeControls = {
    connectionState: () => state.current,
    connectionState$: state.observable,
    historyExpired$: expired.asObservable(),
    lastEventIds: () => wsLink.lastEventIds,
    ws,
    async dispose() {
      disposed = true;
      clearTimeout(renewTimer);
      apollo.stop();
      await ws.dispose();
      state.offline('disposed');
      state.complete();
      expired.complete();
    },
  };
  return Object.assign(apollo, { realtime });
}

/**
 * GraphiQL's fetcher: queries and mutations over HTTP, subscriptions over graphql-ws, both on the
 * page's own origin and both with the token from the token bar.
 *
 * The operation type is read from the document here rather than trusting GraphiQL to hand over
 * its parsed AST (@graphiql/toolkit sends a subscription over HTTP when it does not get one).
 */
import type { Fetcher, FetcherOpts, FetcherParams } from '@graphiql/toolkit';
import { parse, type ExecutionResult, type OperationDefinitionNode } from 'graphql';
import { createClient, type Client } from 'graphql-ws';

export type SocketState = 'idle' | 'connecting' | 'connected' | 'closed';

export interface GatewayFetcher {
  readonly fetcher: Fetcher;
  /** Replaces the token: later HTTP requests use it and the socket reconnects with it. */
  setToken(token: string): void;
  dispose(): void;
}

export function operationType(query: string, operationName?: string | null): string | undefined {
  let operations: OperationDefinitionNode[];
  try {
    operations = parse(query).definitions.filter((d): d is OperationDefinitionNode => d.kind === 'OperationDefinition');
  } catch {
    return undefined; // let the server report the syntax error
  }
  const chosen = operationName ? operations.find((o) => o.name?.value === operationName) : operations[0];
  return chosen?.operation;
}

export function createGatewayFetcher(options: {
  httpUrl: string;
  wsUrl: string;
  token: string;
  onSocketState: (state: SocketState, detail?: string) => void;
}): GatewayFetcher {
  let token = options.token;
  let client: Client | undefined;

  const socket = (): Client => {
    if (client) return client;
    const created = createClient({
      url: options.wsUrl,
      lazy: true,
      // Called on every (re)connect: a refreshed token is picked up after a 4403.
      connectionParams: () => (token ? { authorization: `Bearer ${token}` } : {}),
      retryAttempts: 3,
      on: {
        connecting: () => options.onSocketState('connecting'),
        connected: () => options.onSocketState('connected'),
        closed: (event) => {
          const { code, reason } = event as { code?: number; reason?: string };
          options.onSocketState('closed', code ? `${code}${reason ? ` ${reason}` : ''}` : undefined);
        },
      },
    });
    client = created;
    return created;
  };

  const fetcher: Fetcher = (params: FetcherParams, opts?: FetcherOpts) => {
    if (operationType(params.query, params.operationName) === 'subscription') {
      return socket().iterate({
        query: params.query,
        operationName: params.operationName ?? undefined,
        variables: params.variables ?? undefined,
      }) as unknown as AsyncIterable<ExecutionResult>;
    }
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      accept: 'application/graphql-response+json, application/json;q=0.9',
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...((opts?.headers ?? {}) as Record<string, string>),
    };
    return fetch(options.httpUrl, { method: 'POST', headers, body: JSON.stringify(params) }).then((r) => r.json());
  };

  return {
    fetcher,
    setToken(next) {
      if (next === token) return;
      token = next;
      // The socket authenticated with the old token: close it; the next subscription reconnects.
      const old = client;
      client = undefined;
      options.onSocketState('idle');
      void old?.dispose();
    },
    dispose() {
      void client?.dispose();
      client = undefined;
    },
  };
}

/**
 * GraphiQL's fetcher: queries and mutations over HTTP, subscriptions over graphql-ws, both on the
 * page's own origin, both with the token that is in the token box when Run is pressed (no need to
 * click "Use token" first: a socket opened with another token is replaced).
 *
 * The operation type is read from the document here rather than trusting GraphiQL to hand over
 * its parsed AST (@graphiql/toolkit sends a subscription over HTTP when it does not get one).
 *
 * Whatever stops an operation is shown as a result, never as an endless spinner: a refused socket
 * (4403) is not retried with the same token (it cannot succeed), and its close code and reason
 * become the operation's error and the socket status.
 */
import type { Fetcher, FetcherOpts, FetcherParams } from '@graphiql/toolkit';
import { Kind, parse, type ExecutionResult, type OperationDefinitionNode } from 'graphql';
import { createClient, type Client } from 'graphql-ws';

export type SocketState = 'idle' | 'connecting' | 'connected' | 'closed';

export interface SocketStatus {
  readonly state: SocketState;
  /** The last close's code and reason, and what it means (kept while reconnecting). */
  readonly code?: number;
  readonly reason?: string;
  readonly explanation?: string;
}

export interface GatewayFetcher {
  readonly fetcher: Fetcher;
  /** "Use token": closes a socket authenticated with another token now, not at the next Run. */
  applyToken(token: string): void;
  dispose(): void;
}

/** The graphql-transport-ws close codes the gateway uses, in words a person at the page can act on. */
const CLOSE_EXPLANATIONS: Readonly<Record<number, string>> = {
  4403: 'the server refused the token (missing, invalid or expired); put a valid token in the JWT box and run again',
  4400: 'the server found a protocol error in what this page sent',
  4401: 'the socket was not authenticated before subscribing',
  4408: 'the connection was not initialised in time',
  4429: 'too many connection_init messages',
  4500: 'internal server error',
  1001: 'the server is shutting down; run again to reconnect',
  1006: 'the connection failed or dropped; is the gateway running?',
  1008: 'too many open sockets for this user',
  1011: 'internal server error',
  1013: 'this page read its messages too slowly',
};

const FORBIDDEN = 4403;

/** `Bearer <jwt>` or a bare JWT, as pasted, to the bare JWT. */
export function normalizeToken(raw: string): string {
  return raw.trim().replace(/^Bearer\s+/i, '');
}

export function operationType(query: string, operationName?: string | null): string | undefined {
  let operations: OperationDefinitionNode[];
  try {
    operations = parse(query).definitions.filter((d): d is OperationDefinitionNode => d.kind === Kind.OPERATION_DEFINITION);
  } catch {
    return undefined; // let the server report the syntax error
  }
  const chosen = operationName ? operations.find((o) => o.name?.value === operationName) : operations[0];
  return chosen?.operation;
}

interface CloseLike {
  code: number;
  reason: string;
}
const isCloseLike = (value: unknown): value is CloseLike =>
  typeof value === 'object' && value !== null && typeof (value as CloseLike).code === 'number' && 'reason' in value;

/** The sentence shown for a close: `4403 Forbidden: the server refused the token ...`. */
export function describeClose(code: number, reason?: string): string {
  const explanation = CLOSE_EXPLANATIONS[code];
  return `${code}${reason ? ` ${reason}` : ''}${explanation ? `: ${explanation}` : ''}`;
}

/** Why a subscription ended abnormally, as the GraphQL errors GraphiQL shows in its result pane. */
function failureResult(error: unknown): ExecutionResult {
  // graphql-ws hands over the `error` message's payload (GraphQL errors) as is.
  if (Array.isArray(error)) return { errors: error };
  if (isCloseLike(error)) {
    return {
      errors: [
        {
          message: `The socket was closed with ${describeClose(error.code, error.reason)}`,
          extensions: { closeCode: error.code, closeReason: error.reason },
        },
      ],
    } as unknown as ExecutionResult;
  }
  const message = error instanceof Error ? error.message : String(error);
  return { errors: [{ message: `The subscription failed: ${message}` }] } as unknown as ExecutionResult;
}

/**
 * `inner` with its failure turned into one last result. Hand-written rather than an async
 * generator: GraphiQL's Stop calls `return()`, which must reach graphql-ws at once (a generator
 * would queue it behind the pending `next()` until the next event arrives).
 */
function explainingFailures(inner: AsyncIterator<ExecutionResult>): AsyncIterableIterator<ExecutionResult> {
  let finished = false;
  const iterator: AsyncIterableIterator<ExecutionResult> = {
    async next() {
      if (finished) return { done: true, value: undefined };
      try {
        const step = await inner.next();
        if (step.done) finished = true;
        return step;
      } catch (error) {
        finished = true;
        return { done: false, value: failureResult(error) };
      }
    },
    async return() {
      finished = true;
      await inner.return?.();
      return { done: true, value: undefined };
    },
    [Symbol.asyncIterator]() {
      return iterator;
    },
  };
  return iterator;
}

async function postOverHttp(url: string, params: FetcherParams, headers: Record<string, string>): Promise<ExecutionResult> {
  let response: Response;
  try {
    response = await fetch(url, { method: 'POST', headers, body: JSON.stringify(params) });
  } catch (error) {
    return {
      errors: [{ message: `Could not reach ${url}: ${error instanceof Error ? error.message : String(error)}` }],
    } as unknown as ExecutionResult;
  }
  const text = await response.text();
  try {
    return JSON.parse(text) as ExecutionResult;
  } catch {
    const status = `${response.status} ${response.statusText}`.trim();
    return {
      errors: [{ message: `HTTP ${status} from ${url}, not a GraphQL response: ${text.slice(0, 300)}` }],
    } as unknown as ExecutionResult;
  }
}

export function createGatewayFetcher(options: {
  httpUrl: string;
  wsUrl: string;
  /** The token as it is in the box right now; read at every Run. */
  currentToken: () => string;
  /** Told the token each operation used, so the page can show (and remember) who it runs as. */
  onTokenUsed?: (token: string) => void;
  onSocketStatus: (status: SocketStatus) => void;
}): GatewayFetcher {
  /** One socket per token: a client's connectionParams never change under it. */
  let socket: { client: Client; token: string } | undefined;

  const closeSocket = () => {
    const old = socket;
    socket = undefined;
    if (!old) return;
    options.onSocketStatus({ state: 'idle' });
    void old.client.dispose();
  };

  const socketFor = (token: string): Client => {
    if (socket?.token === token) return socket.client;
    closeSocket();
    const current = () => socket?.client === client;
    let lastClose: CloseLike | undefined;
    const withLastClose = (state: SocketState): SocketStatus =>
      lastClose ? { state, code: lastClose.code, reason: lastClose.reason, explanation: CLOSE_EXPLANATIONS[lastClose.code] } : { state };
    const client = createClient({
      url: options.wsUrl,
      lazy: true,
      connectionParams: () => (token ? { authorization: `Bearer ${token}` } : {}),
      retryAttempts: 3,
      // graphql-ws retries 4403 so that a refreshed token can reconnect; this socket's token is
      // fixed (a new token in the box gets a new socket), so a retry could only be refused again.
      shouldRetry: (event) => isCloseLike(event) && event.code !== FORBIDDEN,
      on: {
        connecting: () => {
          if (current()) options.onSocketStatus(withLastClose('connecting'));
        },
        connected: () => {
          lastClose = undefined;
          if (current()) options.onSocketStatus({ state: 'connected' });
        },
        closed: (event) => {
          if (!current()) return; // a replaced socket's own dispose
          lastClose = isCloseLike(event) ? { code: event.code, reason: event.reason } : undefined;
          // 1000: the last subscription ended and the lazy client closed; nothing went wrong.
          if (lastClose?.code === 1000) lastClose = undefined;
          options.onSocketStatus(withLastClose('closed'));
        },
      },
    });
    socket = { client, token };
    return client;
  };

  const fetcher: Fetcher = (params: FetcherParams, opts?: FetcherOpts) => {
    const token = normalizeToken(options.currentToken());
    options.onTokenUsed?.(token);
    if (operationType(params.query, params.operationName) === 'subscription') {
      const inner = socketFor(token).iterate({
        query: params.query,
        operationName: params.operationName ?? undefined,
        // @graphiql/toolkit types the variables `any`: GraphiQL hands over the parsed JSON object.
        variables: (params.variables ?? undefined) as Record<string, unknown> | undefined,
      }) as AsyncIterator<ExecutionResult>;
      return explainingFailures(inner);
    }
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      accept: 'application/graphql-response+json, application/json;q=0.9',
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...((opts?.headers ?? {}) as Record<string, string>),
    };
    return postOverHttp(options.httpUrl, params, headers);
  };

  return {
    fetcher,
    applyToken(token) {
      if (socket && socket.token !== normalizeToken(token)) closeSocket();
    },
    dispose() {
      const old = socket;
      socket = undefined;
      void old?.client.dispose();
    },
  };
}

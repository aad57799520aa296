/** Real clients: graphql-ws over a real socket, GraphQL over real HTTP, tokens as the platform mints them. */
import type { TypedDocumentNode } from '@graphql-typed-document-node/core';
import { print, type ExecutionResult } from 'graphql';
import { createClient, type Client } from 'graphql-ws';
import WebSocket from 'ws';
import { claims, signHs } from './jwt';
import { TEST_JWT_SECRET } from './services';
import { track } from './teardown';
import { deferred, within } from './wait';

export function token(sub: string, options: { roles?: string[]; expiresInSec?: number; secret?: string } = {}): string {
  return signHs(options.secret ?? TEST_JWT_SECRET, claims(sub, { roles: options.roles ?? [] }, options.expiresInSec ?? 600));
}

export interface TestWsClient {
  readonly client: Client;
  /** Resolves with the close code once the socket closes. */
  readonly closed: Promise<number>;
  /** Resolves once the server acknowledged `connection_init`. */
  readonly connected: Promise<void>;
  dispose(): Promise<void>;
}

const clients = new Set<TestWsClient>();

export function wsClient(url: string, connectionParams?: Record<string, unknown>): TestWsClient {
  const closed = deferred<number>();
  const connected = deferred<void>();
  const client = createClient({
    url,
    webSocketImpl: WebSocket,
    connectionParams,
    lazy: false,
    retryAttempts: 0,
    // Close codes are asserted through `closed`; keep graphql-ws from logging them.
    onNonLazyError: () => undefined,
    on: {
      connected: () => connected.resolve(),
      closed: (event) => {
        const code = (event as { code?: number }).code ?? 0;
        closed.resolve(code);
        connected.reject(new Error(`socket closed with ${code} before it was acknowledged`));
      },
    },
  });
  connected.promise.catch(() => undefined);
  const tracked = track(`graphql-ws client to ${url}`, () => client.dispose());
  const handle: TestWsClient = {
    client,
    closed: closed.promise,
    connected: connected.promise,
    async dispose() {
      clients.delete(handle);
      await tracked.close();
    },
  };
  clients.add(handle);
  return handle;
}

/** Disposes every client still open (afterAll / afterEach). */
export async function disposeClients(): Promise<void> {
  await Promise.all([...clients].map((c) => c.dispose()));
}

export interface Subscription<T> {
  /** The next result (data or errors); fails after `timeoutMs`. */
  next(timeoutMs?: number): Promise<ExecutionResult<T>>;
  /** Resolves when the server completes the operation; rejects on a socket-level error. */
  readonly done: Promise<void>;
  /** Results received and not yet taken by `next()`. */
  pending(): number;
  unsubscribe(): void;
}

export function subscribe<T, V extends Record<string, unknown>>(
  client: Client,
  query: TypedDocumentNode<T, V> | string,
  variables?: V,
): Subscription<T> {
  const queue: ExecutionResult<T>[] = [];
  const waiters: ((result: ExecutionResult<T>) => void)[] = [];
  const done = deferred<void>();
  const unsubscribe = client.subscribe<T>(
    { query: typeof query === 'string' ? query : print(query), variables },
    {
      next: (result) => {
        const waiter = waiters.shift();
        if (waiter) waiter(result as ExecutionResult<T>);
        else queue.push(result as ExecutionResult<T>);
      },
      error: (error) => {
        // graphql-ws reports an `error` message as an array of GraphQL errors.
        if (Array.isArray(error)) {
          const result = { errors: error } as ExecutionResult<T>;
          const waiter = waiters.shift();
          if (waiter) waiter(result);
          else queue.push(result);
          done.resolve();
        } else done.reject(error);
      },
      complete: () => done.resolve(),
    },
  );
  done.promise.catch(() => undefined);
  return {
    next(timeoutMs = 10_000) {
      const ready = queue.shift();
      if (ready) return Promise.resolve(ready);
      let waiter: ((result: ExecutionResult<T>) => void) | undefined;
      const result = new Promise<ExecutionResult<T>>((resolve) => waiters.push((waiter = resolve)));
      // A waiter that timed out must not swallow the result that arrives after it.
      return within(result, 'a subscription result', timeoutMs).finally(() => {
        const index = waiters.indexOf(waiter as (r: ExecutionResult<T>) => void);
        if (index >= 0) waiters.splice(index, 1);
      });
    },
    done: done.promise,
    pending: () => queue.length,
    unsubscribe,
  };
}

export interface HttpResult<T> {
  readonly status: number;
  readonly headers: Headers;
  readonly body: ExecutionResult<T> & { errors?: { message: string; extensions?: Record<string, unknown> }[] };
}

export async function http<T, V extends Record<string, unknown>>(
  url: string,
  query: TypedDocumentNode<T, V> | string,
  options: { variables?: V; token?: string; authorization?: string } = {},
): Promise<HttpResult<T>> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (options.token) headers.authorization = `Bearer ${options.token}`;
  if (options.authorization) headers.authorization = options.authorization;
  const response = await fetch(url, {
    method: 'POST',
    headers,
    body: JSON.stringify({ query: typeof query === 'string' ? query : print(query), variables: options.variables }),
  });
  return { status: response.status, headers: response.headers, body: (await response.json()) as HttpResult<T>['body'] };
}

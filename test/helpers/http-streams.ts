/**
 * Streaming HTTP clients as simple as curl: an SSE reader (GraphQL over SSE, `id:` kept) and a
 * multipart reader (Apollo's multipart subscription protocol), both over real fetch, registered
 * for teardown the moment they exist; every wait bounded.
 */
import { track } from './teardown';
import { within } from './wait';

export interface StreamMessage {
  readonly event?: string;
  readonly id?: string;
  readonly data: unknown;
}

export interface StreamReader {
  readonly status: number;
  readonly headers: Headers;
  /** The next message (an SSE event, a multipart part); rejects when the stream ended first. */
  next(what?: string, timeoutMs?: number): Promise<StreamMessage>;
  /** Resolves when the server ended the response. */
  readonly ended: Promise<void>;
  /** The raw text received so far. */
  text(): string;
  close(): void;
}

function reader(response: Response, controller: AbortController, split: (buffer: string) => [StreamMessage[], string]): StreamReader {
  const queue: StreamMessage[] = [];
  const waiters: { resolve: (m: StreamMessage) => void; reject: (e: Error) => void }[] = [];
  let raw = '';
  let buffer = '';
  let done = false;
  const tracked = track(`stream ${response.url}`, () => controller.abort());
  const ended = (async () => {
    const decoder = new TextDecoder();
    try {
      for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
        const text = decoder.decode(chunk, { stream: true });
        raw += text;
        buffer += text;
        const [messages, rest] = split(buffer);
        buffer = rest;
        for (const message of messages) {
          const waiter = waiters.shift();
          if (waiter) waiter.resolve(message);
          else queue.push(message);
        }
      }
    } catch {
      // aborted by close(): ended as well
    } finally {
      done = true;
      tracked.untrack();
      for (const waiter of waiters.splice(0)) waiter.reject(new Error('the stream ended'));
    }
  })();
  return {
    status: response.status,
    headers: response.headers,
    next(what = 'a stream message', timeoutMs = 10_000) {
      const ready = queue.shift();
      if (ready) return Promise.resolve(ready);
      if (done) return Promise.reject(new Error(`the stream ended before ${what}`));
      return within(new Promise<StreamMessage>((resolve, reject) => waiters.push({ resolve, reject })), what, timeoutMs);
    },
    ended,
    text: () => raw,
    close: () => controller.abort(),
  };
}

/** Splits SSE text into events (comments, i.e. heartbeats, skipped). */
export function splitSse(buffer: string): [StreamMessage[], string] {
  const messages: StreamMessage[] = [];
  let rest = buffer;
  for (let index = rest.indexOf('\n\n'); index >= 0; index = rest.indexOf('\n\n')) {
    const block = rest.slice(0, index);
    rest = rest.slice(index + 2);
    const fields: Record<string, string> = {};
    for (const line of block.split('\n')) {
      if (line.startsWith(':') || line === '') continue;
      const colon = line.indexOf(':');
      const name = line.slice(0, colon);
      const value = line.slice(colon + 1).replace(/^ /, '');
      fields[name] = fields[name] === undefined ? value : `${fields[name]}\n${value}`;
    }
    if (fields.event === undefined && fields.data === undefined) continue;
    messages.push({ event: fields.event, id: fields.id, data: fields.data ? JSON.parse(fields.data) : undefined });
  }
  return [messages, rest];
}

/** Splits multipart text (boundary "graphql") into its JSON parts, heartbeats included. */
export function splitMultipart(buffer: string): [StreamMessage[], string] {
  const messages: StreamMessage[] = [];
  const parts = buffer.split('\r\n--graphql');
  const rest = parts.pop() as string;
  for (const part of parts) {
    const body = part.slice(part.indexOf('\r\n\r\n') + 4).trim();
    if (part.trim() === '' || part.trim() === '--') continue;
    messages.push({ data: JSON.parse(body) });
  }
  return [messages, `${parts.length > 0 ? '' : ''}${rest}`];
}

export async function openSse(url: string, init: { headers?: Record<string, string>; body?: unknown } = {}): Promise<StreamReader> {
  const controller = new AbortController();
  const response = await fetch(url, {
    method: init.body === undefined ? 'GET' : 'POST',
    headers: { accept: 'text/event-stream', ...(init.body === undefined ? {} : { 'content-type': 'application/json' }), ...init.headers },
    body: init.body === undefined ? undefined : JSON.stringify(init.body),
    signal: controller.signal,
  });
  return reader(response, controller, splitSse);
}

export async function openMultipart(url: string, body: unknown, headers: Record<string, string> = {}): Promise<StreamReader> {
  const controller = new AbortController();
  const response = await fetch(url, {
    method: 'POST',
    headers: { accept: 'multipart/mixed;subscriptionSpec="1.0",application/json', 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
    signal: controller.signal,
  });
  return reader(response, controller, splitMultipart);
}

/** `/graphql/stream?query=...&token=...` as a browser's EventSource would ask. */
export function sseUrl(httpUrl: string, query: string, params: Record<string, string> = {}): string {
  const url = new URL(`${httpUrl}/stream`);
  url.searchParams.set('query', query);
  for (const [name, value] of Object.entries(params)) url.searchParams.set(name, value);
  return url.toString();
}

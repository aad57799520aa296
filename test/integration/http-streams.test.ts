/**
 * Subscriptions over multipart HTTP and GraphQL over SSE, with the clients integrators use:
 * Apollo Client 4's plain `HttpLink` (multipart), graphql-sse's client (POST /graphql/stream),
 * `curl -N` as docs/transports.md shows it, and EventSource-shaped GETs (`?token=`, `Last-Event-ID`).
 * Both share graphql-ws' execution path: the per-user connection cap counts every transport, resume
 * and HISTORY_EXPIRED are `after`'s, and the hostile cases end cleanly: no streaming Accept, no
 * token, a huge Last-Event-ID, a token that expires mid-stream, shutdown.
 */
// Typed matchers: @types/jest's expect.stringMatching()/objectContaining() return `any`.
import { expect } from '@jest/globals';
import { execFile, spawn } from 'node:child_process';
import { ApolloClient, HttpLink, InMemoryCache, gql } from '@apollo/client';
import { createClient as createSseClient } from 'graphql-sse';
import { token, wsClient } from '../helpers/clients';
import { gatewaySuite } from '../helpers/suite';
import { realServicesEnv, startGateway, stopGateway, waitForSubscriptions } from '../helpers/gateway';
import { openMultipart, openSse, sseUrl } from '../helpers/http-streams';
import { track } from '../helpers/teardown';
import { uniqueId } from '../helpers/services';
import { deferred, waitFor, within } from '../helpers/wait';

const suite = gatewaySuite({ WS_MAX_SOCKETS_PER_USER: '2' });
const QUOTA = 'subscription Quota { quotaChanged { eventId quotaId kind } }';

async function quotaEvent(userId: string, quotaId: string, messageId: string): Promise<void> {
  await suite.peer.publish('quota.updated', { userId, quotaId }, { messageId });
}

describe('multipart HTTP (Apollo multipart subscription protocol)', () => {
  it("delivers to Apollo Client 4's plain HttpLink, and releases the subscription when it unsubscribes", async () => {
    const user = uniqueId('apollo-mp');
    const apollo = new ApolloClient({
      link: new HttpLink({ uri: suite.gateway.httpUrl, headers: { authorization: `Bearer ${token(user)}` } }),
      cache: new InMemoryCache(),
    });
    track('apollo client', () => apollo.stop());
    const received = deferred<unknown>();
    const subscription = apollo.subscribe({ query: gql(QUOTA) }).subscribe({
      next: (result) => (result.data ? received.resolve(result.data) : received.reject(result.error)),
      error: (error: unknown) => received.reject(error),
    });
    await waitForSubscriptions(suite.gateway, 1);
    expect(suite.gateway.app.stats().sessions.transports.multipart.open).toBe(1);
    await quotaEvent(user, 'q-apollo', `mp-${user}`);
    expect(await within(received.promise, 'the event over multipart')).toEqual({
      quotaChanged: { __typename: 'QuotaEvent', eventId: `mp-${user}`, quotaId: 'q-apollo', kind: 'UPDATED' },
    });
    subscription.unsubscribe();
    await waitForSubscriptions(suite.gateway, 0);
    await waitFor(() => suite.gateway.app.stats().sessions.transports.multipart.open === 0, 'the stream released');
  });

  it('frames as the protocol says: quoted boundary, {"payload"} parts, heartbeat {}, closing boundary on complete (curl -N)', async () => {
    const user = uniqueId('curl');
    // Unquoted subscriptionSpec, as Apollo Client sends it.
    const curl = spawn('curl', [
      '-sN',
      suite.gateway.httpUrl,
      '-H',
      'accept: multipart/mixed;subscriptionSpec=1.0,application/json',
      '-H',
      'content-type: application/json',
      '-H',
      `authorization: Bearer ${token(user, { expiresInSec: 600 })}`,
      '-D',
      '-',
      '--data',
      JSON.stringify({ query: QUOTA }),
    ]);
    track('curl', () => curl.kill());
    let output = '';
    curl.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    await waitForSubscriptions(suite.gateway, 1);
    await quotaEvent(user, 'q-curl', `curl-${user}`);
    await waitFor(() => output.includes(`curl-${user}`), 'curl to print the event');
    expect(output).toMatch(/content-type: multipart\/mixed; boundary="graphql"; subscriptionSpec="1.0"/i);
    expect(output).toContain('\r\n--graphql\r\ncontent-type: application/json; charset=utf-8\r\n\r\n{}\r\n--graphql');
    expect(output).toContain(`{"payload":{"data":{"quotaChanged":{"eventId":"curl-${user}","quotaId":"q-curl","kind":"UPDATED"}}}}`);
    curl.kill();
    await waitForSubscriptions(suite.gateway, 0);
  });

  it('answers a query sent with only the multipart Accept as ordinary JSON', async () => {
    const response = await fetch(suite.gateway.httpUrl, {
      method: 'POST',
      headers: {
        accept: 'multipart/mixed;subscriptionSpec="1.0"',
        'content-type': 'application/json',
        authorization: `Bearer ${token('q')}`,
      },
      body: JSON.stringify({ query: '{ me { id } }' }),
    });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/application\/json/);
    expect(await response.json()).toEqual({ data: { me: { id: 'q' } } });
  });

  it('refuses a subscription without a streaming Accept with STREAMING_TRANSPORT_REQUIRED (406), and without a token with UNAUTHENTICATED (401)', async () => {
    const post = (headers: Record<string, string>) =>
      fetch(suite.gateway.httpUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body: JSON.stringify({ query: QUOTA }),
      });
    const plain = await post({ authorization: `Bearer ${token('plain')}` });
    expect(plain.status).toBe(406);
    const body = (await plain.json()) as { errors: { message: string; extensions: { code: string } }[] };
    expect(body.errors.map((e) => e.extensions.code)).toEqual(['STREAMING_TRANSPORT_REQUIRED']);
    expect(body.errors[0]?.message).toMatch(/multipart\/mixed;subscriptionSpec="1.0".*text\/event-stream/);
    const anonymous = await post({ accept: 'application/json' });
    expect(anonymous.status).toBe(401);
    expect(((await anonymous.json()) as typeof body).errors.map((e) => e.extensions.code)).toEqual(['UNAUTHENTICATED']);
    const anonymousStream = await post({ accept: 'multipart/mixed;subscriptionSpec="1.0"' });
    expect(anonymousStream.status).toBe(401);
  });

  it('ends a stream whose token expires with TOKEN_EXPIRED and the closing boundary', async () => {
    const user = uniqueId('mp-exp');
    const stream = await openMultipart(
      suite.gateway.httpUrl,
      { query: QUOTA },
      { authorization: `Bearer ${token(user, { expiresInSec: 2 })}` },
    );
    expect(stream.status).toBe(200);
    expect((await stream.next('the first heartbeat')).data).toEqual({});
    let last = await stream.next('the expiry', 6_000);
    while (JSON.stringify(last.data) === '{}') last = await stream.next('the expiry', 6_000);
    expect(last.data).toEqual({
      payload: null,
      errors: [{ message: expect.stringMatching(/^Token expired/), extensions: { code: 'TOKEN_EXPIRED' } }],
    });
    await within(stream.ended, 'the response to end');
    expect(stream.text().endsWith('\r\n--graphql--\r\n')).toBe(true);
  });
});

describe('GraphQL over SSE (graphql-sse distinct connections mode) on /graphql/stream', () => {
  it("delivers to graphql-sse's client (POST)", async () => {
    const user = uniqueId('sse-client');
    const client = createSseClient({
      url: `${suite.gateway.httpUrl}/stream`,
      headers: { authorization: `Bearer ${token(user)}` },
      retryAttempts: 0,
    });
    track('graphql-sse client', () => client.dispose());
    const received = deferred<unknown>();
    const stop = client.subscribe(
      { query: QUOTA },
      { next: (r) => received.resolve(r), error: (e) => received.reject(e), complete: () => undefined },
    );
    await waitForSubscriptions(suite.gateway, 1);
    await quotaEvent(user, 'q-sse', `sse-${user}`);
    expect(await within(received.promise, 'the event over SSE')).toEqual({
      data: { quotaChanged: { eventId: `sse-${user}`, quotaId: 'q-sse', kind: 'UPDATED' } },
    });
    stop();
    await waitForSubscriptions(suite.gateway, 0);
  });

  it('GET with ?token= (EventSource): id: <eventId> on each next; Last-Event-ID resumes as after does; unknown ids get HISTORY_EXPIRED', async () => {
    const user = uniqueId('sse-get');
    const url = sseUrl(suite.gateway.httpUrl, QUOTA, { token: token(user) });
    const first = await openSse(url);
    expect(first.status).toBe(200);
    expect(first.headers.get('content-type')).toMatch(/^text\/event-stream/);
    await waitForSubscriptions(suite.gateway, 1);
    await quotaEvent(user, 'q-1', `e1-${user}`);
    const one = await first.next('event 1');
    expect(one).toEqual({
      event: 'next',
      id: `e1-${user}`,
      data: { data: { quotaChanged: { eventId: `e1-${user}`, quotaId: 'q-1', kind: 'UPDATED' } } },
    });
    first.close();
    await waitForSubscriptions(suite.gateway, 0);
    // Missed while disconnected: retained before the reconnect, so they come from the replay.
    const bridged = suite.gateway.app.stats().bridge.bridged;
    await quotaEvent(user, 'q-2', `e2-${user}`);
    await quotaEvent(user, 'q-3', `e3-${user}`);
    await waitFor(() => suite.gateway.app.stats().bridge.bridged === bridged + 2, 'the missed events bridged');
    const resumed = await openSse(url, { headers: { 'last-event-id': `e1-${user}` } });
    expect((await resumed.next('replayed 2')).id).toBe(`e2-${user}`);
    expect((await resumed.next('replayed 3')).id).toBe(`e3-${user}`);
    resumed.close();

    const expired = await openSse(url, { headers: { 'last-event-id': 'never-seen' } });
    const refusal = await expired.next('HISTORY_EXPIRED');
    expect(refusal.event).toBe('next');
    expect((refusal.data as { errors: { extensions: { code: string } }[] }).errors.map((e) => e.extensions.code)).toEqual([
      'HISTORY_EXPIRED',
    ]);
    expect((await expired.next('complete')).event).toBe('complete');
    await within(expired.ended, 'the response to end');
  });

  it('treats a huge Last-Event-ID as a bad after (BAD_USER_INPUT), and one past the header limit is refused by HTTP (431)', async () => {
    const url = sseUrl(suite.gateway.httpUrl, QUOTA, { token: token(uniqueId('huge')) });
    const big = await openSse(url, { headers: { 'last-event-id': 'x'.repeat(8_000) } });
    const refusal = await big.next('the refusal');
    expect((refusal.data as { errors: { extensions: { code: string } }[] }).errors.map((e) => e.extensions.code)).toEqual([
      'BAD_USER_INPUT',
    ]);
    expect((await big.next('complete')).event).toBe('complete');
    const tooBig = await fetch(url, { headers: { accept: 'text/event-stream', 'last-event-id': 'x'.repeat(20_000) } });
    expect(tooBig.status).toBe(431);
    // The gateway still serves.
    expect((await fetch(`${suite.gateway.app.url}/healthz`)).status).toBe(200);
  });

  it('answers bad requests before the stream opens: no token 401, a bad document 400, and ends at token expiry with TOKEN_EXPIRED', async () => {
    const anonymous = await fetch(sseUrl(suite.gateway.httpUrl, QUOTA), { headers: { accept: 'text/event-stream' } });
    expect(anonymous.status).toBe(401);
    const broken = await fetch(sseUrl(suite.gateway.httpUrl, 'subscription {', { token: token('b') }), {
      headers: { accept: 'text/event-stream' },
    });
    expect(broken.status).toBe(400);
    expect(((await broken.json()) as { errors: { extensions: { code: string } }[] }).errors[0]?.extensions.code).toBe(
      'GRAPHQL_PARSE_FAILED',
    );

    const stream = await openSse(sseUrl(suite.gateway.httpUrl, QUOTA, { token: token(uniqueId('sse-exp'), { expiresInSec: 2 }) }));
    const ended = await stream.next('the expiry', 6_000);
    expect(ended).toEqual({
      event: 'next',
      id: undefined,
      data: { errors: [{ message: expect.stringMatching(/^Token expired/), extensions: { code: 'TOKEN_EXPIRED' } }] },
    });
    expect((await stream.next('complete')).event).toBe('complete');
  });
});

describe('one execution path for every transport', () => {
  it('counts sockets and streams together against WS_MAX_SOCKETS_PER_USER (2 here): the third gets TOO_MANY_CONNECTIONS', async () => {
    const user = uniqueId('cap');
    const socket = wsClient(suite.gateway.wsUrl, { authorization: `Bearer ${token(user)}` });
    await socket.connected;
    const sse = await openSse(sseUrl(suite.gateway.httpUrl, QUOTA, { token: token(user) }));
    expect(sse.status).toBe(200);
    await waitFor(() => suite.gateway.app.stats().sessions.transports.sse.open >= 1, 'the SSE stream counted');
    const third = await fetch(suite.gateway.httpUrl, {
      method: 'POST',
      headers: {
        accept: 'multipart/mixed;subscriptionSpec="1.0"',
        'content-type': 'application/json',
        authorization: `Bearer ${token(user)}`,
      },
      body: JSON.stringify({ query: QUOTA }),
    });
    expect(third.status).toBe(429);
    expect(((await third.json()) as { errors: { extensions: { code: string } }[] }).errors[0]?.extensions.code).toBe(
      'TOO_MANY_CONNECTIONS',
    );
    sse.close();
    await socket.dispose();
  });

  it("spends an EventSource's ?token= against its user's HTTP rate limit, not its address's (users behind one NAT)", async () => {
    // Two operations of burst, one more per second: under a per-address bucket the third and
    // fourth stream below (all from 127.0.0.1) would be refused with 429.
    const gateway = await startGateway(realServicesEnv(suite.database.url, { HTTP_RATE_LIMIT_BURST: '2', HTTP_RATE_LIMIT_PER_SEC: '1' }));
    const opened = [];
    for (const user of [uniqueId('nat-a'), uniqueId('nat-b')].flatMap((u) => [u, u])) {
      const stream = await openSse(sseUrl(gateway.httpUrl, QUOTA, { token: token(user) }));
      opened.push(stream);
      expect(stream.status).toBe(200);
    }
    for (const stream of opened) stream.close();
    await stopGateway(gateway);
  });

  it('labels /metrics by transport', async () => {
    const text = await (await fetch(`${suite.gateway.app.url}/metrics`)).text();
    expect(text).toMatch(/cloudphone_realtime_connections_opened_total\{transport="multipart"\} [1-9]/);
    expect(text).toMatch(/cloudphone_realtime_connections_opened_total\{transport="sse"\} [1-9]/);
    expect(text).toMatch(/cloudphone_realtime_connections_ended_expired_total\{transport="sse"\} [1-9]/);
    expect(text).toMatch(/cloudphone_realtime_connections\{transport="ws"\} \d/);
  });

  it('ends streams at shutdown: multipart with SHUTTING_DOWN and the closing boundary, SSE without complete (clients reconnect)', async () => {
    const gateway = await startGateway(realServicesEnv(suite.database.url));
    const user = uniqueId('shutdown');
    const multipart = await openMultipart(gateway.httpUrl, { query: QUOTA }, { authorization: `Bearer ${token(user)}` });
    const sse = await openSse(sseUrl(gateway.httpUrl, QUOTA, { token: token(user) }));
    await waitForSubscriptions(gateway, 2);
    await stopGateway(gateway);
    await within(Promise.all([multipart.ended, sse.ended]), 'both streams to end');
    expect(multipart.text()).toContain('"extensions":{"code":"SHUTTING_DOWN"}');
    expect(multipart.text().endsWith('\r\n--graphql--\r\n')).toBe(true);
    expect(sse.text()).not.toContain('event: complete');
  });
});

it('curl is installed for the docs example', async () => {
  await new Promise<void>((resolve, reject) =>
    execFile('curl', ['--version'], (error: Error | null) => (error ? reject(error) : resolve())),
  );
});

/**
 * Sessions that live through token refresh and end on revocation (docs/transports.md):
 * `renewSession` over the same graphql-ws socket keeps a subscription alive across the old
 * token's `exp` (and refuses another user's token with FORBIDDEN, keeping the old one);
 * `revokeSessions` and the platform's `user.sessions.revoked` / `auth.sessions.revoked` end every
 * socket and stream of the user on two instances within a second, refuse older tokens, and still
 * do after a gateway restart (Redis keeps the revocation with its own expiry).
 */
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';
import { http, subscribe, token, wsClient } from '../helpers/clients';
import { realServicesEnv, startGateway, stopGateway, waitForSubscriptions, type TestGateway } from '../helpers/gateway';
import { openMultipart, openSse, sseUrl } from '../helpers/http-streams';
import { signHs } from '../helpers/jwt';
import { gatewaySuite } from '../helpers/suite';
import { TEST_JWT_SECRET, uniqueId } from '../helpers/services';
import { track } from '../helpers/teardown';
import { deferred, waitFor, within } from '../helpers/wait';

const suite = gatewaySuite();
const QUOTA = 'subscription { quotaChanged { eventId } }';
const RENEW = 'mutation Renew($token: String!) { renewSession(token: $token) { expiresAt } }';

/** A graphql-ws client as a frontend builds it, with the close code and reason recorded. */
function socketClient(url: string, jwt: string) {
  const closed = deferred<{ code: number; reason: string }>();
  const client = createClient({
    url,
    webSocketImpl: WebSocket,
    connectionParams: { authorization: `Bearer ${jwt}` },
    lazy: false,
    retryAttempts: 0,
    onNonLazyError: () => undefined,
    on: { closed: (event) => closed.resolve(event as { code: number; reason: string }) },
  });
  track('graphql-ws client', () => client.dispose());
  return { client, closed: closed.promise };
}

function once<T>(client: ReturnType<typeof createClient>, query: string, variables: Record<string, unknown>): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    client.subscribe<T>({ query, variables }, { next: (r) => resolve(r as T), error: reject, complete: () => undefined });
  });
}

describe('renewSession (in-band token renewal on graphql-ws)', () => {
  it("keeps a subscription alive across the old token's exp; the expiry timer moves", async () => {
    const user = uniqueId('renew');
    const short = token(user, { expiresInSec: 2 });
    const oldExp = (JSON.parse(Buffer.from(short.split('.')[1] as string, 'base64url').toString()) as { exp: number }).exp * 1000;
    const { client, closed } = socketClient(suite.gateway.wsUrl, short);
    const sub = subscribe(client, QUOTA);
    await waitForSubscriptions(suite.gateway, 1);
    const renewed = await once<{ data: { renewSession: { expiresAt: string } } }>(client, RENEW, {
      token: token(user, { expiresInSec: 600 }),
    });
    expect(Date.parse(renewed.data.renewSession.expiresAt)).toBeGreaterThan(Date.now() + 500_000);
    // Past the old exp (and the close it would have caused).
    await waitFor(() => Date.now() > oldExp + 1_500, "the old token's exp to pass", 6_000);
    await suite.peer.publish('quota.updated', { userId: user, quotaId: 'q' }, { messageId: `after-exp-${user}` });
    expect((await sub.next()).data).toEqual({ quotaChanged: { eventId: `after-exp-${user}` } });
    const stillOpen = await Promise.race([closed.then(() => false), Promise.resolve(true)]);
    expect(stillOpen).toBe(true);
    expect(suite.gateway.app.stats().sessions.renewals).toBeGreaterThanOrEqual(1);
  });

  it("refuses another user's, an invalid or an expired token with FORBIDDEN; the socket keeps its old credentials and ends at their exp (4403)", async () => {
    const user = uniqueId('renew-bad');
    const { client, closed } = socketClient(suite.gateway.wsUrl, token(user, { expiresInSec: 3 }));
    const refusedBefore = suite.gateway.app.stats().sessions.renewalsRefused;
    for (const bad of [token(uniqueId('other')), 'not-a-jwt', token(user, { expiresInSec: -60 })]) {
      const result = await once<{ data: unknown; errors: { extensions: { code: string } }[] }>(client, RENEW, { token: bad });
      expect(result.data).toBeNull();
      expect(result.errors.map((e) => e.extensions.code)).toEqual(['FORBIDDEN']);
    }
    expect(suite.gateway.app.stats().sessions.renewalsRefused).toBe(refusedBefore + 3);
    const me = await once<{ data: { me: { id: string } } }>(client, '{ me { id } }', {});
    expect(me.data.me.id).toBe(user);
    expect(await within(closed, 'the 4403 at the old exp', 8_000)).toMatchObject({ code: 4403, reason: 'Forbidden: token expired' });
  });

  it('is FORBIDDEN over plain HTTP, which has no connection to renew', async () => {
    const user = uniqueId('renew-http');
    const result = await http(suite.gateway.httpUrl, RENEW, { token: token(user), variables: { token: token(user) } });
    expect(result.body.errors?.map((e) => e.extensions?.code)).toEqual(['FORBIDDEN']);
  });
});

describe('revocation across instances', () => {
  let a: TestGateway;
  let b: TestGateway;
  let env: Record<string, string | undefined>;

  beforeAll(async () => {
    // Two instances of one deployment: the same queue, Redis prefix and database.
    env = realServicesEnv(suite.database.url);
    a = await startGateway(env);
    b = await startGateway(env);
  });

  it('revokeSessions ends every socket and stream of the user on both instances within a second, and refuses older tokens', async () => {
    const user = uniqueId('revoked');
    const neighbour = uniqueId('neighbour');
    const old = token(user);
    const onA = socketClient(a.wsUrl, old);
    const onB = socketClient(b.wsUrl, old);
    subscribe(onA.client, QUOTA);
    subscribe(onB.client, QUOTA);
    const sse = await openSse(sseUrl(b.httpUrl, QUOTA, { token: old }));
    const multipart = await openMultipart(a.httpUrl, { query: QUOTA }, { authorization: `Bearer ${old}` });
    const other = socketClient(b.wsUrl, token(neighbour));
    subscribe(other.client, QUOTA);
    await waitFor(
      () => (a.app.stats().subscriptions.quotaChanged ?? 0) === 2 && (b.app.stats().subscriptions.quotaChanged ?? 0) === 3,
      'five subscriptions',
    );

    const admin = token(uniqueId('admin'), { roles: ['admin'] });
    const started = Date.now();
    const revoked = await http<{ revokeSessions: { userId: string; revokedAt: string } }, Record<string, unknown>>(
      a.httpUrl,
      'mutation R($userId: ID!) { revokeSessions(userId: $userId) { userId revokedAt } }',
      { token: admin, variables: { userId: user } },
    );
    expect(revoked.body.data?.revokeSessions.userId).toBe(user);
    const [closeA, closeB] = await within(
      Promise.all([onA.closed, onB.closed, sse.ended, multipart.ended]),
      'every connection to end',
      1_000,
    );
    expect(Date.now() - started).toBeLessThan(1_000);
    expect(closeA).toMatchObject({ code: 4403, reason: 'Forbidden: sessions revoked' });
    expect(closeB).toMatchObject({ code: 4403, reason: 'Forbidden: sessions revoked' });
    expect(sse.text()).toContain('"code":"SESSION_REVOKED"');
    expect(multipart.text()).toContain('"code":"SESSION_REVOKED"');
    // The neighbour is untouched.
    expect(b.app.stats().subscriptions.quotaChanged).toBe(1);

    // The old token is refused everywhere; one issued after the revocation's second works.
    const again = socketClient(b.wsUrl, old);
    expect((await within(again.closed, 'the refused reconnect')).code).toBe(4403);
    expect((await http(a.httpUrl, '{ me { id } }', { token: old })).body.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
    const revokedSec = Math.floor(Date.parse(revoked.body.data?.revokeSessions.revokedAt as string) / 1000);
    const fresh = signHs(TEST_JWT_SECRET, { sub: user, roles: [], iat: revokedSec + 1, exp: revokedSec + 600 });
    expect(
      (await http<{ me: { id: string } }, Record<string, unknown>>(b.httpUrl, '{ me { id } }', { token: fresh })).body.data?.me.id,
    ).toBe(user);
    expect(a.app.stats().sessions.revocations).toBeGreaterThanOrEqual(1);
    expect(b.app.stats().sessions.transports.sse.revoked).toBe(1);
    const metrics = await (await fetch(`${a.app.url}/metrics`)).text();
    expect(metrics).toMatch(/cloudphone_realtime_session_revocations_total [1-9]/);
  });

  it('refuses revokeSessions to non-administrators (FORBIDDEN)', async () => {
    const result = await http(a.httpUrl, 'mutation { revokeSessions(userId: "someone") { userId } }', { token: token(uniqueId('user')) });
    expect(result.body.errors?.map((e) => e.extensions?.code)).toEqual(['FORBIDDEN']);
  });

  it.each([
    ['user.sessions.revoked', (userId: string) => ({ userId })],
    [
      'auth.sessions.revoked',
      (userId: string) => ({
        eventId: `env-${userId}`,
        eventType: 'auth.sessions.revoked',
        timestamp: new Date().toISOString(),
        payload: { userId },
      }),
    ],
  ])("the platform event %s ends the user's sockets on both instances", async (routingKey, body) => {
    const user = uniqueId('platform-revoked');
    const onA = socketClient(a.wsUrl, token(user));
    const onB = socketClient(b.wsUrl, token(user));
    subscribe(onA.client, QUOTA);
    subscribe(onB.client, QUOTA);
    await waitFor(
      () => (a.app.stats().subscriptions.quotaChanged ?? 0) >= 1 && (b.app.stats().subscriptions.quotaChanged ?? 0) >= 2,
      'both sockets subscribed',
    );
    await suite.peer.publish(routingKey, body(user), { messageId: `${routingKey}-${user}` });
    const closes = await within(Promise.all([onA.closed, onB.closed]), 'both sockets to close');
    expect(closes.map((c) => c.code)).toEqual([4403, 4403]);
  });

  it('survives a gateway restart: the revocation is kept in Redis with its own expiry', async () => {
    const user = uniqueId('restart');
    const old = token(user);
    await http(a.httpUrl, 'mutation R($u: ID!) { revokeSessions(userId: $u) { userId } }', {
      token: token('root', { roles: ['admin'] }),
      variables: { u: user },
    });
    await stopGateway(b);
    b = await startGateway(env);
    const refused = socketClient(b.wsUrl, old);
    expect((await within(refused.closed, 'the refused connect')).code).toBe(4403);
    const fine = wsClient(b.wsUrl, { authorization: `Bearer ${token(uniqueId('other'))}` });
    await fine.connected;
  });
});

/**
 * The frontend's way in: a real Apollo Client 4 with the typed documents codegen generates from
 * test/operations (TypedDocumentNode), HttpLink for queries and mutations, GraphQLWsLink (graphql-ws
 * over `ws`) for subscriptions, split by operation type. A user's client queries its quota and
 * watches quotaChanged; an administrator's client changes the quota; the user's client receives
 * the event the mutation caused (outbox -> RabbitMQ -> bridge -> Redis -> socket). docs/resuming.md's
 * resuming link (GraphQLWsLink over withResume) reconnects after a 4403 with `after`.
 */
// Typed matchers: @types/jest's expect.stringMatching()/objectContaining() return `any`.
import { expect } from '@jest/globals';
import { ApolloClient, ApolloLink, HttpLink, InMemoryCache } from '@apollo/client';
import { SetContextLink } from '@apollo/client/link/context';
import { GraphQLWsLink } from '@apollo/client/link/subscriptions';
import { OperationTypeNode, parse } from 'graphql';
import Redis from 'ioredis';
import { createClient, type Client } from 'graphql-ws';
import WebSocket from 'ws';
import { QuotaChangedDocument, QuotaDocument, UpdateQuotaDocument, type QuotaChangedSubscription } from '../generated/graphql';
import { createTopics } from '../../src/contracts/topics';
import { openPlatformPeer } from '../helpers/amqp';
import { token } from '../helpers/clients';
import { realServicesEnv, startGateway, stopGateways, waitForSubscriptions, type TestGateway } from '../helpers/gateway';
import { withResume } from '../helpers/resumable-client';
import { createTestDatabase, TEST_REDIS_URL, uniqueId, type TestDatabase } from '../helpers/services';
import { deferred, waitFor, within } from '../helpers/wait';

let database: TestDatabase;
let gateway: TestGateway;
const cleanups: (() => unknown)[] = [];

beforeAll(async () => {
  database = await createTestDatabase();
  gateway = await startGateway(realServicesEnv(database.url));
});

afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
  await stopGateways();
  await database?.drop();
});

/** What a frontend builds once: the token is read per request and per (re)connection. */
function frontendClient(getToken: () => string): { apollo: ApolloClient; socket: Client } {
  const socket = createClient({
    url: gateway.wsUrl,
    // Node 20 has no global WebSocket; browsers pass nothing here.
    webSocketImpl: WebSocket,
    connectionParams: () => ({ authorization: `Bearer ${getToken()}` }),
  });
  const http = new SetContextLink(({ headers }) => ({
    headers: { ...(headers as Record<string, string> | undefined), authorization: `Bearer ${getToken()}` },
  })).concat(new HttpLink({ uri: gateway.httpUrl }));
  const link = ApolloLink.split(({ operationType }) => operationType === OperationTypeNode.SUBSCRIPTION, new GraphQLWsLink(socket), http);
  const apollo = new ApolloClient({ link, cache: new InMemoryCache() });
  cleanups.push(
    () => apollo.stop(),
    () => socket.dispose(),
  );
  return { apollo, socket };
}

it('queries, mutates and receives the resulting quotaChanged event through Apollo Client', async () => {
  const user = uniqueId('ines');
  const userToken = token(user);
  const adminToken = token(uniqueId('admin'), { roles: ['admin'] });
  const app = frontendClient(() => userToken);
  const adminConsole = frontendClient(() => adminToken);

  // Query (HTTP): no quota yet.
  const first = await app.apollo.query({ query: QuotaDocument, variables: {}, fetchPolicy: 'network-only' });
  expect(first.data).toEqual({ quota: null });

  // Subscribe (WebSocket).
  const received = deferred<QuotaChangedSubscription>();
  const subscription = app.apollo.subscribe({ query: QuotaChangedDocument, variables: {} }).subscribe({
    next: (result) => (result.data ? received.resolve(result.data) : received.reject(result.error)),
    error: (error: unknown) => received.reject(error),
  });
  cleanups.push(() => subscription.unsubscribe());
  await waitForSubscriptions(gateway, 1);

  // Mutate (HTTP, administrator).
  const mutated = await adminConsole.apollo.mutate({
    mutation: UpdateQuotaDocument,
    variables: { userId: user, input: { limits: { maxDevices: 12, totalCpuCores: 48 }, status: 'ACTIVE' } },
  });
  const quota = mutated.data?.updateQuota;
  expect(quota).toMatchObject({ userId: user, status: 'ACTIVE', limits: { maxDevices: 12, totalCpuCores: 48 } });

  // The event the mutation caused, typed by the generated document.
  const event = (await within(received.promise, 'the quotaChanged event')).quotaChanged;
  expect(event).toMatchObject({
    type: 'quota.updated',
    kind: 'UPDATED',
    userId: user,
    quotaId: quota?.id,
    limits: { maxDevices: 12, totalCpuCores: 48 },
  });
  expect(typeof event.eventId).toBe('string');
  expect(Number.isNaN(Date.parse(event.occurredAt))).toBe(false);

  // And the query now sees the change.
  const after = await app.apollo.query({ query: QuotaDocument, variables: {}, fetchPolicy: 'network-only' });
  expect(after.data?.quota).toMatchObject({ id: quota?.id, userId: user, limits: { maxDevices: 12 } });
});

it('surfaces FORBIDDEN to a non-administrator mutation as a GraphQL error, over the same links', async () => {
  const user = uniqueId('jon');
  const app = frontendClient(() => token(user));
  await expect(
    app.apollo.mutate({ mutation: UpdateQuotaDocument, variables: { userId: user, input: { limits: { maxDevices: 1 } } } }),
  ).rejects.toMatchObject({ errors: [expect.objectContaining({ extensions: expect.objectContaining({ code: 'FORBIDDEN' }) })] });
});

it('GraphQLWsLink over withResume (docs/resuming.md): a 4403 at token expiry reconnects with after, losing nothing across the gap', async () => {
  const user = uniqueId('rosa');
  const peer = await openPlatformPeer();
  const redis = new Redis(TEST_REDIS_URL);
  const expired = deferred<void>();
  // The retry waits until events were published while the socket was closed.
  const reconnect = deferred<void>();
  const socket = withResume(
    createClient({
      url: gateway.wsUrl,
      webSocketImpl: WebSocket,
      connectionParams: () => ({ authorization: `Bearer ${token(user, { expiresInSec: 3 })}` }),
      retryAttempts: 20,
      retryWait: () => reconnect.promise,
      on: { closed: (event) => void ((event as { code: number }).code === 4403 && expired.resolve()) },
    }),
  );
  const apollo = new ApolloClient({ link: new GraphQLWsLink(socket), cache: new InMemoryCache() });
  cleanups.push(
    () => peer.close(),
    () => redis.disconnect(),
    () => apollo.stop(),
    () => socket.dispose(),
    () => reconnect.resolve(),
  );
  const log = createTopics(gateway.config.redis.topicPrefix).userLog(user);
  const publish = async (n: number) => {
    await peer.publish('order.completed', { userId: user, orderId: `o-${n}`, amount: '9.90' }, { messageId: `${user}-${n}` });
    await waitFor(async () => (await redis.xrevrange(log, '+', '-', 'COUNT', 1))[0]?.[1][1] === `${user}-${n}`, `event ${n} bridged`);
  };
  const received: string[] = [];
  const before = gateway.app.stats().subscriptions.orderCompleted ?? 0;
  const subscription = apollo
    .subscribe({ query: parse('subscription ($after: ID) { orderCompleted(after: $after) { eventId orderId } }') })
    .subscribe({ next: (result) => void received.push((result.data as { orderCompleted: { eventId: string } }).orderCompleted.eventId) });
  cleanups.push(() => subscription.unsubscribe());
  await waitForSubscriptions(gateway, before + 1, 'orderCompleted');
  for (let n = 1; n <= 3; n++) await publish(n);
  await expired.promise;
  for (let n = 4; n <= 6; n++) await publish(n);
  reconnect.resolve();
  for (let n = 7; n <= 9; n++) await publish(n);
  await waitFor(() => received.includes(`${user}-9`), 'the last event');
  expect(received).toEqual(Array.from({ length: 9 }, (_, i) => `${user}-${i + 1}`));
}, 60_000);

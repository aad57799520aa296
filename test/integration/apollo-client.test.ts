/**
 * The frontend's way in: a real Apollo Client 4 with the typed documents codegen generates from
 * test/operations (TypedDocumentNode), HttpLink for queries and mutations, GraphQLWsLink (graphql-ws
 * over `ws`) for subscriptions, split by operation type. A user's client queries its quota and
 * watches quotaChanged; an administrator's client changes the quota; the user's client receives
 * the event the mutation caused (outbox -> RabbitMQ -> bridge -> Redis -> socket).
 */
import { ApolloClient, ApolloLink, HttpLink, InMemoryCache } from '@apollo/client';
import { SetContextLink } from '@apollo/client/link/context';
import { GraphQLWsLink } from '@apollo/client/link/subscriptions';
import { OperationTypeNode } from 'graphql';
import { createClient, type Client } from 'graphql-ws';
import WebSocket from 'ws';
import { QuotaChangedDocument, QuotaDocument, UpdateQuotaDocument, type QuotaChangedSubscription } from '../generated/graphql';
import { token } from '../helpers/clients';
import { realServicesEnv, startGateway, stopGateways, waitForSubscriptions, type TestGateway } from '../helpers/gateway';
import { createTestDatabase, uniqueId, type TestDatabase } from '../helpers/services';
import { deferred, within } from '../helpers/wait';

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
    headers: { ...headers, authorization: `Bearer ${getToken()}` },
  })).concat(new HttpLink({ uri: gateway.httpUrl }));
  const link = ApolloLink.split(
    ({ operationType }) => operationType === OperationTypeNode.SUBSCRIPTION,
    new GraphQLWsLink(socket),
    http,
  );
  const apollo = new ApolloClient({ link, cache: new InMemoryCache() });
  cleanups.push(() => apollo.stop(), () => socket.dispose());
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

/**
 * The embedded default (docs/configuration.md): no DATABASE_URL, REDIS_URL or AMQP_URL. The same API on
 * PGlite, the in-process pub/sub and the in-process event bus, with the same validation.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { MemoryEventBus } from '../../src/infra/memory/memory-bus';
import { QuotaChangedDocument, QuotaDocument, UpdateQuotaDocument } from '../generated/graphql';
import { disposeClients, http, subscribe, token, wsClient } from '../helpers/clients';
import { startGateway, stopGateways, waitForSubscriptions, type TestGateway } from '../helpers/gateway';
import { uniqueId } from '../helpers/services';

let dataDir: string;
let gateway: TestGateway;

beforeAll(async () => {
  dataDir = await mkdtemp(path.join(os.tmpdir(), 'cpr-embedded-'));
  gateway = await startGateway({ DATA_DIR: path.join(dataDir, 'db') });
  // PGlite boots and applies every migration through the WebAssembly schema engine: slow on a
  // loaded machine (seen past 30 s), which is start-up time, not the behaviour under test.
}, 120_000);

afterAll(async () => {
  await disposeClients();
  await stopGateways();
  await rm(dataDir, { recursive: true, force: true });
});

it('runs on embedded PostgreSQL, in-process pub/sub and the in-process bus', async () => {
  expect(gateway.config.database.kind).toBe('embedded');
  expect(gateway.config.redis.kind).toBe('memory');
  expect(gateway.config.amqp.kind).toBe('memory');
  const ready = await fetch(`${gateway.app.url}/readyz`);
  expect(ready.status).toBe(200);
  expect(await ready.json()).toMatchObject({
    dependencies: { database: { mode: 'embedded' }, pubsub: { mode: 'memory' }, eventBus: { mode: 'memory' } },
  });
});

it('delivers a platform event, dead-letters a bad one, and pushes updateQuota through the outbox', async () => {
  const user = uniqueId('lena');
  const client = wsClient(gateway.wsUrl, { authorization: `Bearer ${token(user)}` });
  const sub = subscribe(client.client, QuotaChangedDocument, {});
  await waitForSubscriptions(gateway, 1);

  const bus = gateway.app.bus as MemoryEventBus;
  bus.publishRaw('quota.updated', Buffer.from('not json'), { messageId: 'bad-1' });
  bus.publishRaw('quota.exceeded', Buffer.from(JSON.stringify({ userId: user, percentage: { cpu: 101, memory: 80 } })), {
    messageId: 'good-1',
  });
  expect((await sub.next()).data?.quotaChanged).toMatchObject({ eventId: 'good-1', kind: 'EXCEEDED', usagePercent: 101 });
  expect(bus.deadLetters.map((d) => [d.message.messageId, d.reason])).toContainEqual(['bad-1', 'not JSON']);

  const admin = token(uniqueId('admin'), { roles: ['admin'] });
  const updated = await http(gateway.httpUrl, UpdateQuotaDocument, {
    token: admin,
    variables: { userId: user, input: { limits: { maxDevices: 3 } } },
  });
  expect(updated.body.errors).toBeUndefined();
  const pushed = (await sub.next()).data?.quotaChanged;
  expect(pushed).toMatchObject({
    type: 'quota.updated',
    userId: user,
    limits: { maxDevices: 3 },
    quotaId: updated.body.data?.updateQuota.id,
  });

  const read = await http(gateway.httpUrl, QuotaDocument, { token: token(user), variables: {} });
  expect(read.body.data?.quota?.limits.maxDevices).toBe(3);
});

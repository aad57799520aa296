/**
 * deductQuota, restoreQuota, renewQuota on the real services: validated transitions, each with
 * its outbox event through RabbitMQ to quotaChanged; crossing 100% also emits quota.exceeded;
 * impossible ones change nothing. Only administrators change quotas; users read only their own.
 */
import {
  DeductQuotaDocument,
  QuotaChangedDocument,
  QuotaDocument,
  RenewQuotaDocument,
  RestoreQuotaDocument,
  UpdateQuotaDocument,
} from '../generated/graphql';
import type { PlatformPeer } from '../helpers/amqp';
import { disposeClients, http, subscribe, token, wsClient } from '../helpers/clients';
import type { TestSql } from '../helpers/db';
import { waitForSubscriptions, type TestGateway } from '../helpers/gateway';
import { uniqueId } from '../helpers/services';
import { gatewaySuite } from '../helpers/suite';

const suite = gatewaySuite();
let gateway: TestGateway;
let peer: PlatformPeer;
let sql: TestSql;
beforeAll(() => ({ gateway, peer, sql } = suite));

afterEach(async () => {
  await disposeClients();
  await waitForSubscriptions(gateway, 0);
});

const admin = () => token(uniqueId('admin'), { roles: ['admin'] });

async function givenQuota(userId: string, limits: Record<string, number>, extra: Record<string, unknown> = {}) {
  const result = await http(gateway.httpUrl, UpdateQuotaDocument, { token: admin(), variables: { userId, input: { limits, ...extra } } });
  expect(result.body.errors).toBeUndefined();
  return result.body.data!.updateQuota;
}

const eventsOf = async (userId: string) =>
  (
    await sql.query<{ routing_key: string }>(
      `SELECT routing_key FROM outbox_event WHERE payload->'payload'->>'userId' = $1 ORDER BY created_at, id`,
      [userId],
    )
  ).map((r) => r.routing_key);

it('deducts, crosses 100% (quota.deducted then quota.exceeded), restores and renews, each pushed through RabbitMQ', async () => {
  const alice = uniqueId('alice');
  const wiretap = await peer.tap('quota.*');
  const client = wsClient(gateway.wsUrl, { authorization: `Bearer ${token(alice)}` });
  const sub = subscribe(client.client, QuotaChangedDocument, {});
  await waitForSubscriptions(gateway, 1);
  await givenQuota(alice, { maxDevices: 2, totalCpuCores: 8, monthlyTrafficGB: 10 });
  expect((await sub.next()).data?.quotaChanged).toMatchObject({ type: 'quota.updated', limits: { maxDevices: 2 } });

  const first = await http(gateway.httpUrl, DeductQuotaDocument, {
    token: admin(),
    variables: { userId: alice, input: { devices: 1, cpuCores: 2 } },
  });
  expect(first.body.errors).toBeUndefined();
  expect(first.body.data?.deductQuota).toMatchObject({ status: 'ACTIVE', version: 2, usage: { currentDevices: 1, usedCpuCores: 2 } });
  const deducted = (await sub.next()).data!.quotaChanged;
  expect(deducted).toMatchObject({
    type: 'quota.deducted',
    kind: 'DEDUCTED',
    usage: { currentDevices: 1, usedCpuCores: 2 },
    usagePercent: 50,
  });
  expect((await peer.take(wiretap, (m) => m.properties.messageId === deducted.eventId, 'quota.deducted')).fields.routingKey).toBe(
    'quota.deducted',
  );

  // Reaching the device limit crosses 100%: EXCEEDED, and both events, in order.
  const second = await http(gateway.httpUrl, DeductQuotaDocument, { token: admin(), variables: { userId: alice, input: { devices: 1 } } });
  expect(second.body.data?.deductQuota).toMatchObject({ status: 'EXCEEDED', usage: { currentDevices: 2 } });
  const [again, exceeded] = [(await sub.next()).data!.quotaChanged, (await sub.next()).data!.quotaChanged];
  expect(again).toMatchObject({ kind: 'DEDUCTED', status: 'EXCEEDED', usagePercent: 100 });
  expect(exceeded).toMatchObject({
    type: 'quota.exceeded',
    kind: 'EXCEEDED',
    status: 'EXCEEDED',
    usagePercent: 100,
    usage: { currentDevices: 2 },
  });
  expect((await peer.take(wiretap, (m) => m.properties.messageId === exceeded.eventId, 'quota.exceeded')).fields.routingKey).toBe(
    'quota.exceeded',
  );

  // Metered traffic may pass its limit; no second quota.exceeded while already over 100%.
  const traffic = await http(gateway.httpUrl, DeductQuotaDocument, {
    token: admin(),
    variables: { userId: alice, input: { trafficGB: 12.5 } },
  });
  expect(traffic.body.data?.deductQuota.usage.monthlyTrafficUsedGB).toBe(12.5);
  expect((await sub.next()).data!.quotaChanged).toMatchObject({ kind: 'DEDUCTED', usagePercent: 125 });

  const restored = await http(gateway.httpUrl, RestoreQuotaDocument, {
    token: admin(),
    variables: { userId: alice, input: { devices: 1 } },
  });
  expect(restored.body.data?.restoreQuota).toMatchObject({ status: 'EXCEEDED', usage: { currentDevices: 1 } });
  expect((await sub.next()).data!.quotaChanged).toMatchObject({ type: 'quota.restored', kind: 'RESTORED', usage: { currentDevices: 1 } });

  // Renewing resets monthly traffic: back under 100%, ACTIVE, valid 30 more days.
  const renewed = await http(gateway.httpUrl, RenewQuotaDocument, {
    token: admin(),
    variables: { userId: alice, input: { extendDays: 30 } },
  });
  expect(renewed.body.errors).toBeUndefined();
  const quota = renewed.body.data!.renewQuota;
  expect(quota).toMatchObject({ status: 'ACTIVE', usage: { monthlyTrafficUsedGB: 0, currentDevices: 1 } });
  expect(Date.parse(quota.validUntil!)).toBeGreaterThan(Date.now() + 29 * 86_400_000);
  const renewedEvent = (await sub.next()).data!.quotaChanged;
  expect(renewedEvent).toMatchObject({ type: 'quota.renewed', kind: 'RENEWED', status: 'ACTIVE', validUntil: quota.validUntil });

  expect(await eventsOf(alice)).toEqual([
    'quota.updated',
    'quota.deducted',
    'quota.deducted',
    'quota.exceeded',
    'quota.deducted',
    'quota.restored',
    'quota.renewed',
  ]);
  const read = await http(gateway.httpUrl, QuotaDocument, { token: token(alice), variables: {} });
  expect(read.body.data?.quota).toMatchObject({ status: 'ACTIVE', version: quota.version, usage: { currentDevices: 1, usedCpuCores: 2 } });
  expect(sub.pending()).toBe(0);
});

it('refuses impossible changes with BAD_USER_INPUT (or NOT_FOUND without a quota), changing nothing and writing no event', async () => {
  const bob = uniqueId('bob');
  await givenQuota(bob, { maxDevices: 1, totalMemoryGB: 4 });
  const ok = await http(gateway.httpUrl, DeductQuotaDocument, { token: admin(), variables: { userId: bob, input: { memoryGB: 3 } } });
  expect(ok.body.errors).toBeUndefined();
  const before = await sql.query('SELECT * FROM quota WHERE user_id = $1', [bob]);
  const eventsBefore = await eventsOf(bob);

  const cases: [string, () => ReturnType<typeof http>][] = [
    [
      'past the hard device limit',
      () => http(gateway.httpUrl, DeductQuotaDocument, { token: admin(), variables: { userId: bob, input: { devices: 2 } } }),
    ],
    [
      'past the hard memory limit',
      () => http(gateway.httpUrl, DeductQuotaDocument, { token: admin(), variables: { userId: bob, input: { memoryGB: 1.5 } } }),
    ],
    ['nothing to deduct', () => http(gateway.httpUrl, DeductQuotaDocument, { token: admin(), variables: { userId: bob, input: {} } })],
    [
      'a negative amount',
      () => http(gateway.httpUrl, DeductQuotaDocument, { token: admin(), variables: { userId: bob, input: { devices: -1 } } }),
    ],
    [
      'restoring more than used',
      () => http(gateway.httpUrl, RestoreQuotaDocument, { token: admin(), variables: { userId: bob, input: { memoryGB: 5 } } }),
    ],
    [
      'renewing by zero days',
      () => http(gateway.httpUrl, RenewQuotaDocument, { token: admin(), variables: { userId: bob, input: { extendDays: 0 } } }),
    ],
  ];
  for (const [what, attempt] of cases) {
    const result = await attempt();
    expect([what, result.body.errors?.[0]?.extensions?.code]).toEqual([what, 'BAD_USER_INPUT']);
  }
  expect(await sql.query('SELECT * FROM quota WHERE user_id = $1', [bob])).toEqual(before);
  expect(await eventsOf(bob)).toEqual(eventsBefore);

  // A suspended quota can be neither deducted from nor renewed.
  await givenQuota(bob, {}, { status: 'SUSPENDED' });
  const suspendedBefore = await sql.query('SELECT * FROM quota WHERE user_id = $1', [bob]);
  for (const result of [
    await http(gateway.httpUrl, DeductQuotaDocument, { token: admin(), variables: { userId: bob, input: { memoryGB: 0.5 } } }),
    await http(gateway.httpUrl, RenewQuotaDocument, { token: admin(), variables: { userId: bob, input: { extendDays: 30 } } }),
  ]) {
    expect(result.body.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
  }
  expect(await sql.query('SELECT * FROM quota WHERE user_id = $1', [bob])).toEqual(suspendedBefore);

  const nobody = uniqueId('nobody');
  const missing = await http(gateway.httpUrl, DeductQuotaDocument, {
    token: admin(),
    variables: { userId: nobody, input: { devices: 1 } },
  });
  expect(missing.body.errors?.[0]?.extensions?.code).toBe('NOT_FOUND');
  expect(await sql.query('SELECT id FROM quota WHERE user_id = $1', [nobody])).toEqual([]);
});

it('lets only administrators change quotas, and users read only their own', async () => {
  const carol = uniqueId('carol');
  const mallory = uniqueId('mallory');
  await givenQuota(carol, { maxDevices: 5 });
  const before = await sql.query('SELECT * FROM quota WHERE user_id = $1', [carol]);
  for (const result of [
    await http(gateway.httpUrl, DeductQuotaDocument, { token: token(carol), variables: { userId: carol, input: { devices: 1 } } }),
    await http(gateway.httpUrl, RestoreQuotaDocument, { token: token(mallory), variables: { userId: carol, input: { devices: 1 } } }),
    await http(gateway.httpUrl, RenewQuotaDocument, { token: token(carol), variables: { userId: carol, input: { extendDays: 1 } } }),
    await http(gateway.httpUrl, UpdateQuotaDocument, {
      token: token(mallory),
      variables: { userId: carol, input: { limits: { maxDevices: 0 } } },
    }),
    await http(gateway.httpUrl, QuotaDocument, { token: token(mallory), variables: { userId: carol } }),
  ]) {
    expect(result.body.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
  }
  expect(await sql.query('SELECT * FROM quota WHERE user_id = $1', [carol])).toEqual(before);
  const own = await http(gateway.httpUrl, QuotaDocument, { token: token(carol), variables: {} });
  expect(own.body.data?.quota).toMatchObject({ userId: carol, limits: { maxDevices: 5 } });
});

it('marks a quota EXCEEDED (and emits quota.exceeded) when updateQuota lowers a limit below what is used', async () => {
  const bea = uniqueId('bea');
  await givenQuota(bea, { maxDevices: 10, monthlyTrafficGB: 100 });
  const used = await http(gateway.httpUrl, DeductQuotaDocument, { token: admin(), variables: { userId: bea, input: { devices: 5 } } });
  expect(used.body.data?.deductQuota).toMatchObject({ status: 'ACTIVE' });
  const lowered = await givenQuota(bea, { maxDevices: 2 });
  expect(lowered).toMatchObject({ status: 'EXCEEDED', limits: { maxDevices: 2 } });
  // Already over: a further deduction of a metered resource keeps it EXCEEDED, with no second event.
  const more = await http(gateway.httpUrl, DeductQuotaDocument, { token: admin(), variables: { userId: bea, input: { trafficGB: 200 } } });
  expect(more.body.data?.deductQuota).toMatchObject({ status: 'EXCEEDED' });
  expect(await eventsOf(bea)).toEqual(['quota.updated', 'quota.deducted', 'quota.updated', 'quota.exceeded', 'quota.deducted']);
});

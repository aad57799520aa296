/**
 * Announcements and personal notifications (CONTRACT §7) on the real services, two gateway
 * instances of one deployment: `broadcastAnnouncement` writes an outbox row, the relay publishes
 * it, the bridge publishes it once per audience (Redis), and every connected user whose token
 * matches (tenant, role, user id, everyone) receives it on `notifications` exactly once, on
 * whichever instance its socket is. Also: an audience matching nobody, resuming with `after`,
 * administrators only, and a 10 MB message.
 */
import Redis from 'ioredis';
import { BroadcastAnnouncementDocument, NotificationsDocument, type AnnouncementInput } from '../generated/graphql';
import { http, subscribe, token, wsClient, type Subscription } from '../helpers/clients';
import { realServicesEnv, startGateway, waitForSubscriptions, type TestGateway } from '../helpers/gateway';
import { TEST_JWT_SECRET, TEST_REDIS_URL, uniqueId } from '../helpers/services';
import { claims, signHs } from '../helpers/jwt';
import { gatewaySuite } from '../helpers/suite';
import { waitFor } from '../helpers/wait';

const suite = gatewaySuite();
let second: TestGateway;
let tap: Redis;
const crossed: { channel: string; message: string }[] = [];

const T1 = uniqueId('tenant');
const T2 = uniqueId('tenant');
const OPS = uniqueId('ops');
const adminToken = () => token(uniqueId('root'), { roles: ['admin'] });

interface Listener {
  readonly id: string;
  readonly sub: Subscription<{ notifications: Record<string, unknown> }>;
}
const users = {} as Record<'u1' | 'u2' | 'u3' | 'u4', Listener>;

function userToken(sub: string, extra: { tenantId?: string; roles?: string[] }): string {
  return signHs(TEST_JWT_SECRET, claims(sub, extra));
}

function listen(gateway: TestGateway, claims: { tenantId?: string; roles?: string[] }, variables: { after?: string } = {}): Listener {
  const id = uniqueId('u');
  const client = wsClient(gateway.wsUrl, { authorization: `Bearer ${userToken(id, claims)}` }).client;
  return { id, sub: subscribe(client, NotificationsDocument, variables) };
}

async function broadcast(input: AnnouncementInput, bearer = adminToken()) {
  return http(suite.gateway.httpUrl, BroadcastAnnouncementDocument, { token: bearer, variables: { input } });
}

async function announce(input: AnnouncementInput): Promise<string> {
  const result = await broadcast(input);
  expect(result.body.errors).toBeUndefined();
  return result.body.data!.broadcastAnnouncement.eventId;
}

beforeAll(async () => {
  const { config } = suite.gateway;
  if (config.amqp.kind !== 'amqp' || config.redis.kind !== 'redis') throw new Error('real services expected');
  second = await startGateway(
    realServicesEnv(suite.database.url, {
      AMQP_EXCHANGE: config.amqp.exchange,
      AMQP_QUEUE: config.amqp.queue,
      AMQP_DLQ: config.amqp.deadLetterQueue,
      AMQP_DLX: config.amqp.deadLetterExchange,
      REDIS_TOPIC_PREFIX: config.redis.topicPrefix,
    }),
  );
  tap = new Redis(TEST_REDIS_URL);
  tap.on('pmessage', (_p: string, channel: string, message: string) => crossed.push({ channel, message }));
  await tap.psubscribe(`${config.redis.topicPrefix}notification:*`);
  users.u1 = listen(suite.gateway, { tenantId: T1, roles: [OPS, 'user'] });
  users.u2 = listen(second, { tenantId: T1 });
  users.u3 = listen(second, { tenantId: T2, roles: [OPS] });
  users.u4 = listen(suite.gateway, { tenantId: T2 });
  await waitForSubscriptions(suite.gateway, 2, 'notifications');
  await waitForSubscriptions(second, 2, 'notifications');
});

afterAll(() => {
  tap?.disconnect();
});

/** Each listed user's next notification is `eventId`, with these fields. */
async function expectReceived(who: (keyof typeof users)[], eventId: string, fields: Record<string, unknown>): Promise<void> {
  for (const name of who) {
    const result = await users[name].sub.next();
    expect(result.errors).toBeUndefined();
    expect(result.data?.notifications).toMatchObject({ eventId, type: 'notification.announcement', ...fields });
  }
}

const sent: { eventId: string; input: AnnouncementInput }[] = [];

describe('audiences, across two instances', () => {
  it('a tenant: its users on either instance, no one else', async () => {
    const input = { title: 'Tenant maintenance', message: 'Tonight 22:00', severity: 'WARNING' as const, audience: { tenantId: T1 } };
    const eventId = await announce(input);
    sent.push({ eventId, input });
    await expectReceived(['u1', 'u2'], eventId, {
      scope: 'TENANT',
      severity: 'WARNING',
      title: 'Tenant maintenance',
      message: 'Tonight 22:00',
      userId: null,
    });
  });

  it('a role: every user with it, whatever the tenant', async () => {
    const eventId = await announce({ title: 'On call', message: 'Rota changed', audience: { role: OPS } });
    await expectReceived(['u1', 'u3'], eventId, { scope: 'ROLE', severity: 'INFO' });
  });

  it('named users', async () => {
    const eventId = await announce({
      title: 'Hello',
      message: 'Just you two',
      category: 'personal',
      audience: { userIds: [users.u4.id, users.u2.id, users.u4.id] },
    });
    await expectReceived(['u4', 'u2'], eventId, { scope: 'USER', category: 'personal' });
  });

  it('a user matching several audiences of one announcement gets it once', async () => {
    const eventId = await announce({
      title: 'Both',
      message: 'Tenant and role',
      audience: { tenantId: T1, role: OPS, userIds: [users.u1.id] },
    });
    // u1 matches all three; u2 the tenant; u3 the role.
    await expectReceived(['u1', 'u2', 'u3'], eventId, { title: 'Both' });
  });

  it('an audience matching nobody reaches nobody; everyone is one publish and reaches everyone once', async () => {
    const nobody = await announce({ title: 'Nobody', message: 'No such tenant', audience: { tenantId: uniqueId('nobody') } });
    const all = await announce({ title: 'Everyone', message: 'Release 2.0', severity: 'CRITICAL', audience: { all: true } });
    // Each user's next notification is the one to everyone: nothing of the other came before it.
    await expectReceived(['u1', 'u2', 'u3', 'u4'], all, { scope: 'ALL', severity: 'CRITICAL' });
    const onAll = crossed.filter((m) => m.message.includes(all));
    expect(onAll.map((m) => m.channel)).toEqual([`${suite.gateway.config.redis.topicPrefix}notification:all`]);
    expect(crossed.filter((m) => m.message.includes(nobody)).length).toBe(1);
    // Exactly once: a final announcement is each one's very next notification (no duplicate before it).
    const last = await announce({ title: 'Last', message: 'marker', audience: { all: true } });
    await expectReceived(['u1', 'u2', 'u3', 'u4'], last, { title: 'Last' });
    for (const name of Object.keys(users) as (keyof typeof users)[]) expect(users[name].sub.pending()).toBe(0);
    sent.push({ eventId: last, input: { title: 'Last', message: 'marker', audience: { all: true } } });
  });

  it('the mutation writes an outbox row, as every mutation does', async () => {
    const [row] = await suite.sql.query('SELECT routing_key, payload FROM outbox_event WHERE id = $1', [sent[0]?.eventId]);
    expect(row).toMatchObject({
      routing_key: 'notification.announcement',
      payload: {
        eventId: sent[0]?.eventId,
        eventType: 'notification.announcement',
        payload: { title: 'Tenant maintenance', audience: { tenantId: T1 } },
      },
    });
  });
});

describe('resuming and personal notifications', () => {
  it("after: what followed, for this caller's audiences only, in order, once", async () => {
    // A user of tenant T1 with the role, subscribing late: resumes after the first announcement.
    const late = listen(second, { tenantId: T1, roles: [OPS] }, { after: sent[0]?.eventId });
    const titles: string[] = [];
    for (let i = 0; i < 4; i++) titles.push(String((await late.sub.next()).data?.notifications.title));
    // Not "Hello" (named users), not "Nobody"; "Both" once though it matched the tenant and the role.
    expect(titles).toEqual(['On call', 'Both', 'Everyone', 'Last']);
    await waitForSubscriptions(second, 3, 'notifications');
    const after = await announce({ title: 'Live', message: 'after the replay', audience: { tenantId: T1 } });
    expect((await late.sub.next()).data?.notifications).toMatchObject({ eventId: after, title: 'Live' });
    await expectReceived(['u1', 'u2'], after, { title: 'Live' });
    expect(late.sub.pending()).toBe(0);
  });

  it('notification.send from the platform reaches that user alone', async () => {
    const id = uniqueId('n');
    await suite.peer.publish(
      'notification.send',
      {
        userId: users.u3.id,
        title: 'Invoice',
        message: 'Your invoice is ready',
        type: 'billing',
        timestamp: '2026-12-01T00:00:00Z',
        _trace: { traceparent: 'x' },
      },
      { messageId: id },
    );
    expect((await users.u3.sub.next()).data?.notifications).toMatchObject({
      eventId: id,
      type: 'notification.send',
      scope: 'USER',
      userId: users.u3.id,
      title: 'Invoice',
    });
    const marker = await announce({ title: 'Marker', message: 'm', audience: { all: true } });
    await expectReceived(['u1', 'u2', 'u4'], marker, { title: 'Marker' });
    expect((await users.u3.sub.next()).data?.notifications).toMatchObject({ eventId: marker });
  });
});

describe('channels', () => {
  it('an instance holds an audience channel only while one of its sockets matches it', async () => {
    const tenant = uniqueId('solo');
    const prefix = suite.gateway.config.redis.topicPrefix;
    const channel = `${prefix}notification:tenant:${tenant}`;
    const redis = new Redis(TEST_REDIS_URL);
    try {
      const id = uniqueId('u');
      const handle = wsClient(second.wsUrl, { authorization: `Bearer ${userToken(id, { tenantId: tenant })}` });
      subscribe(handle.client, NotificationsDocument, {});
      await waitForSubscriptions(second, 4, 'notifications');
      expect(await redis.pubsub('CHANNELS', `${prefix}notification:tenant:*`)).toContain(channel);
      await handle.dispose();
      await waitForSubscriptions(second, 3, 'notifications');
      await waitFor(async () => !((await redis.pubsub('CHANNELS', channel)) as string[]).includes(channel), 'the tenant channel released');
      // Everyone's channel stays: other sockets still match it.
      expect(await redis.pubsub('CHANNELS', `${prefix}notification:all`)).toEqual([`${prefix}notification:all`]);
    } finally {
      redis.disconnect();
    }
  });
});

describe('refusals', () => {
  it('only administrators may broadcast', async () => {
    const result = await broadcast({ title: 'x', message: 'y', audience: { all: true } }, token(uniqueId('user')));
    expect(result.body.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
  });

  it('an audience naming nobody at all, or empty text, is BAD_USER_INPUT and writes nothing', async () => {
    const before = await suite.sql.query(`SELECT count(*)::int AS n FROM outbox_event WHERE routing_key = 'notification.announcement'`);
    for (const input of [
      { title: 'x', message: 'y', audience: {} },
      { title: 'x', message: 'y', audience: { all: false, userIds: [] } },
      { title: '', message: 'y', audience: { all: true } },
      { title: 'x', message: 'y'.repeat(4_001), audience: { all: true } },
    ]) {
      const result = await broadcast(input);
      expect(result.body.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    }
    expect(await suite.sql.query(`SELECT count(*)::int AS n FROM outbox_event WHERE routing_key = 'notification.announcement'`)).toEqual(
      before,
    );
  });

  it('a 10 MB message is refused with a clear error; the gateway keeps serving', async () => {
    const response = await fetch(suite.gateway.httpUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${adminToken()}` },
      body: JSON.stringify({
        query: 'mutation($input: AnnouncementInput!) { broadcastAnnouncement(input: $input) { eventId } }',
        variables: { input: { title: 'big', message: 'x'.repeat(10 * 1024 * 1024), audience: { all: true } } },
      }),
    });
    expect(response.status).toBeGreaterThanOrEqual(400);
    expect(response.status).toBeLessThan(500);
    const after = await announce({ title: 'Still here', message: 'ok', audience: { all: true } });
    await expectReceived(['u1', 'u2', 'u3', 'u4'], after, { title: 'Still here' });
  });
});

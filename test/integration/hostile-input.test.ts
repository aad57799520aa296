/**
 * Hostile input, table-driven, on the real services: AMQP bodies, HTTP requests, WebSocket frames
 * and JWTs that a broken or malicious peer could send. Each case asserts the clear outcome (the
 * dead letter and its `x-rejection-reason`, the HTTP status and `extensions.code`, the close code,
 * the error on the operation). A subscriber opened before the first case is still open after the
 * last one, and a good event still reaches it.
 */
import type { GetMessage } from 'amqplib';
import { openPlatformPeer, type PlatformPeer } from '../helpers/amqp';
import { disposeClients, subscribe, wsClient, type Subscription } from '../helpers/clients';
import { realServicesEnv, startGateway, stopGateways, waitForSubscriptions, type TestGateway } from '../helpers/gateway';
import { claims, hsSignedWithPublicKey, keyPair, signHs, signWith, tamper, unsignedToken } from '../helpers/jwt';
import { connectRaw } from '../helpers/raw-ws';
import { createTestDatabase, TEST_JWT_SECRET, uniqueId, type TestDatabase } from '../helpers/services';
import { within } from '../helpers/wait';

const ISSUER = 'https://id.test';
const AUDIENCE = 'cloudphone-realtime';
const MAX_EVENT_BYTES = 4_096;
const MAX_WS_PAYLOAD = 16_384;

let database: TestDatabase;
let gateway: TestGateway;
let pemGateway: TestGateway;
let peer: PlatformPeer;
const rsa = keyPair('RS256');

/** A token this gateway accepts (HS256, its issuer and audience). */
const good = (sub: string, extra: Record<string, unknown> = {}, ttlSec = 600) =>
  signHs(TEST_JWT_SECRET, claims(sub, { iss: ISSUER, aud: AUDIENCE, ...extra }, ttlSec));

// The subscriber that must survive everything.
const SENTINEL = uniqueId('sentinel');
let sentinel: Subscription<{ quotaChanged: Record<string, unknown> }>;
const QUOTA_FIELDS = 'eventId userId kind status severity usagePercent limits { maxDevices } usage { currentDevices }';

beforeAll(async () => {
  database = await createTestDatabase();
  const limits = {
    JWT_ISSUER: ISSUER,
    JWT_AUDIENCE: AUDIENCE,
    EVENT_MAX_BYTES: String(MAX_EVENT_BYTES),
    WS_MAX_PAYLOAD_BYTES: String(MAX_WS_PAYLOAD),
    WS_CONNECTION_INIT_TIMEOUT_MS: '1000',
    HTTP_BODY_LIMIT_BYTES: '65536',
    HTTP_RATE_LIMIT_BURST: '100000',
  };
  gateway = await startGateway(realServicesEnv(database.url, limits));
  pemGateway = await startGateway(
    realServicesEnv(database.url, { ...limits, JWT_SECRET: '', JWT_PUBLIC_KEY: rsa.publicPem, JWT_ISSUER: '', JWT_AUDIENCE: '' }),
  );
  peer = await openPlatformPeer();
  const client = wsClient(gateway.wsUrl, { authorization: `Bearer ${good(SENTINEL)}` });
  sentinel = subscribe(client.client, `subscription { quotaChanged { ${QUOTA_FIELDS} } }`);
  await waitForSubscriptions(gateway, 1);
});

afterAll(async () => {
  await disposeClients();
  await stopGateways();
  await peer?.close();
  await database?.drop();
});

// ------------------------------------------------------------------------------------------ AMQP

/** Sent as is when a Buffer or a string, as JSON otherwise. */
type Body = unknown;
const deep = (n: number) => '['.repeat(n) + ']'.repeat(n);

/** Messages that must be dead-lettered, with the reason the DLQ shows. */
const deadLetters: [string, string, (userId: string) => Body, string | RegExp][] = [
  ['truncated JSON', 'quota.updated', (u) => Buffer.from(`{"userId": "${u}`), 'not JSON'],
  ['an empty body', 'quota.updated', () => Buffer.alloc(0), 'not JSON'],
  ['NaN, a JavaScript literal', 'quota.alert', (u) => Buffer.from(`{"userId":"${u}","usagePercent":NaN}`), 'not JSON'],
  ['single quotes', 'quota.alert', (u) => Buffer.from(`{'userId':'${u}'}`), 'not JSON'],
  ['a trailing comma', 'quota.alert', (u) => Buffer.from(`{"userId":"${u}",}`), 'not JSON'],
  ['invalid UTF-8 (0xff 0xfe)', 'quota.updated', () => Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), 'invalid UTF-8'],
  [
    'an overlong UTF-8 encoding',
    'quota.updated',
    (u) => Buffer.concat([Buffer.from(`{"userId":"${u}`), Buffer.from([0xc0, 0xaf]), Buffer.from('"}')]),
    'invalid UTF-8',
  ],
  [
    'a UTF-8 encoded surrogate',
    'quota.updated',
    (u) => Buffer.concat([Buffer.from(`{"userId":"${u}`), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from('"}')]),
    'invalid UTF-8',
  ],
  [
    'a truncated multi-byte sequence',
    'quota.updated',
    (u) => Buffer.concat([Buffer.from(`{"userId":"${u}"}`), Buffer.from([0xe2, 0x82])]),
    'invalid UTF-8',
  ],
  ['a JSON array', 'quota.updated', (u) => [{ userId: u }], 'not a JSON object'],
  ['a JSON string', 'quota.updated', () => Buffer.from('"just a string"'), 'not a JSON object'],
  ['JSON null', 'quota.updated', () => Buffer.from('null'), 'not a JSON object'],
  ['a JSON number', 'quota.updated', () => Buffer.from('42'), 'not a JSON object'],
  [
    'a body over EVENT_MAX_BYTES',
    'quota.updated',
    (u) => ({ userId: u, pad: 'x'.repeat(MAX_EVENT_BYTES) }),
    /^body too large: \d+ bytes exceeds 4096$/,
  ],
  ['deeply nested arrays over the size limit', 'quota.updated', () => Buffer.from(deep(MAX_EVENT_BYTES)), /^body too large/],
  ['no userId', 'quota.updated', () => ({ quotaId: 'q1', usage: { currentDevices: 1 } }), 'missing userId'],
  ['userId null', 'quota.alert', () => ({ userId: null }), 'missing userId'],
  ['userId as an object (operator injection)', 'quota.alert', () => ({ userId: { $ne: null } }), 'invalid userId'],
  ['userId as an array', 'quota.alert', (u) => ({ userId: [u] }), 'invalid userId'],
  ['userId as a boolean', 'quota.alert', () => ({ userId: true }), 'invalid userId'],
  ['userId empty', 'quota.alert', () => ({ userId: '   ' }), 'invalid userId'],
  ['userId of 1,000 characters', 'quota.alert', () => ({ userId: 'u'.repeat(1_000) }), 'invalid userId'],
  ['userId a negative number', 'quota.alert', () => ({ userId: -1 }), 'invalid userId'],
  ['userId a fraction', 'quota.alert', () => ({ userId: 1.5 }), 'invalid userId'],
  ['userId only under __proto__', 'quota.alert', (u) => Buffer.from(`{"__proto__":{"userId":"${u}"}}`), 'missing userId'],
  ['userId only under constructor.prototype', 'quota.alert', (u) => ({ constructor: { prototype: { userId: u } } }), 'missing userId'],
  [
    'an envelope whose payload lacks userId',
    'quota.alert',
    () => ({ eventId: 'e1', eventType: 'quota.alert', payload: { quotaId: 'q' } }),
    'missing userId',
  ],
  [
    'an envelope whose payload is an array',
    'quota.alert',
    (u) => ({ eventId: 'e2', eventType: 'quota.alert', payload: [{ userId: u }] }),
    'missing userId',
  ],
];

/** Messages that are accepted, with the hostile parts dropped: what the subscriber sees. */
const accepted: [string, (userId: string) => Body, Record<string, unknown>][] = [
  [
    '__proto__ keys (no prototype pollution)',
    (u) => Buffer.from(`{"userId":"${u}","__proto__":{"polluted":true,"isAdmin":true},"severity":"s1"}`),
    { severity: 's1' },
  ],
  [
    'a constructor.prototype key',
    (u) => ({ userId: u, constructor: { prototype: { polluted: true } }, severity: 's2' }),
    { severity: 's2' },
  ],
  [
    '__proto__ inside limits',
    (u) => Buffer.from(`{"userId":"${u}","limits":{"__proto__":{"maxDevices":5}}}`),
    { limits: { maxDevices: null } },
  ],
  [
    'wrong types in optional fields',
    (u) => ({ userId: u, usagePercent: 'lots', limits: 'all', usage: [1, 2], status: 7, severity: { a: 1 } }),
    { usagePercent: null, limits: null, usage: null, status: null, severity: null },
  ],
  [
    'numbers out of range',
    (u) => Buffer.from(`{"userId":"${u}","usagePercent":1e400,"limits":{"maxDevices":1e12}}`),
    { usagePercent: null, limits: { maxDevices: null } },
  ],
  [
    'an envelope with an object as eventId (the messageId is used)',
    (u) => ({ eventId: { $gt: '' }, eventType: 'quota.alert', payload: { userId: u, severity: 'env' } }),
    { severity: 'env' },
  ],
  ['duplicate keys (the last wins)', (u) => Buffer.from(`{"userId":"someone-else","userId":"${u}","severity":"dup"}`), { severity: 'dup' }],
  ['a severity longer than 50 characters', (u) => ({ userId: u, severity: 's'.repeat(51) }), { severity: null }],
  ['control characters in strings', (u) => ({ userId: u, severity: 'a\u001bb\u0007c' }), { severity: 'a\u001bb\u0007c' }],
  // PostgreSQL cannot hold NUL: an optional field with one reads as not sent.
  ['a NUL in an optional string', (u) => ({ userId: u, severity: 'a\u0000b' }), { severity: null }],
  ['mixed-case status', (u) => ({ userId: u, status: 'sUsPeNdEd' }), { status: 'SUSPENDED' }],
  ['a deep array in an unknown field', (u) => Buffer.from(`{"userId":"${u}","junk":${deep(1_000)}}`), { kind: 'ALERT' }],
];

describe('AMQP: dead-lettered with their reason', () => {
  it.each(deadLetters)('%s', async (name, routingKey, make, reason) => {
    const id = uniqueId('dl');
    const body = make(uniqueId('user'));
    await peer.publish(routingKey, body, { messageId: id });
    const dead: GetMessage = await peer.take(
      gateway.config.amqp.deadLetterQueue,
      (m) => m.properties.messageId === id,
      `the dead letter of ${name}`,
    );
    const header = String(dead.properties.headers?.['x-rejection-reason']);
    if (typeof reason === 'string') expect(header).toBe(reason);
    else expect(header).toMatch(reason);
    expect(dead.properties.headers?.['x-original-routing-key']).toBe(routingKey);
  });
});

describe('AMQP: accepted with the hostile parts dropped', () => {
  it.each(accepted)('%s', async (_name, make, expected) => {
    const id = uniqueId('ok');
    await peer.publish('quota.alert', make(SENTINEL), { messageId: id });
    const event = (await sentinel.next()).data?.quotaChanged;
    expect(event).toMatchObject({ eventId: id, userId: SENTINEL, ...expected });
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(({} as Record<string, unknown>).isAdmin).toBeUndefined();
  });

  it('never sees a routing key outside docs/events.md (the queue binds only those)', async () => {
    const before = gateway.app.stats().bridge;
    await peer.publish('quota.bogus', { userId: SENTINEL }, { messageId: uniqueId('unbound') });
    await peer.publish('quota.alert', { userId: SENTINEL }, { messageId: 'after-unbound' });
    expect((await sentinel.next()).data?.quotaChanged.eventId).toBe('after-unbound');
    const after = gateway.app.stats().bridge;
    expect(after.bridged).toBe(before.bridged + 1);
    expect(after.deadLettered + after.ignored).toBe(before.deadLettered + before.ignored);
  });
});

// ------------------------------------------------------------------------------------------ HTTP

interface HttpCase {
  readonly method?: string;
  readonly headers?: Record<string, string>;
  readonly body?: string | Buffer;
  readonly path?: string;
  readonly status: number;
  readonly code: string;
  readonly limit?: string;
}

const json = (value: unknown) => JSON.stringify(value);
/** 5,200 tokens in 5.2 KB: past GRAPHQL_MAX_TOKENS (5,000) while under every size limit. */
const tokenFlood = `{ quota(userId: ${'['.repeat(2_600)}${']'.repeat(2_600)}) { id } }`;
const fragmentBomb = (levels: number) =>
  `{ __typename ...F0 } ${Array.from({ length: levels }, (_, i) =>
    i === levels - 1 ? `fragment F${i} on Query { __typename }` : `fragment F${i} on Query { ...F${i + 1} ... on Query { ...F${i + 1} } }`,
  ).join(' ')}`;
const httpCases: [string, HttpCase][] = [
  ['invalid JSON', { body: '{"query":', status: 400, code: 'BAD_REQUEST' }],
  ['a JSON string body', { body: '"{ __typename }"', status: 400, code: 'BAD_REQUEST' }],
  ['a batch (JSON array)', { body: json([{ query: '{ __typename }' }, { query: '{ __typename }' }]), status: 400, code: 'BAD_REQUEST' }],
  [
    'text/plain (CSRF-able content type)',
    { headers: { 'content-type': 'text/plain' }, body: json({ query: '{ __typename }' }), status: 400, code: 'BAD_REQUEST' },
  ],
  [
    'a form body',
    { headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'query=%7B__typename%7D', status: 400, code: 'BAD_REQUEST' },
  ],
  [
    'a mutation over GET',
    {
      method: 'GET',
      path: `?query=${encodeURIComponent('mutation { updateQuota(userId: "x", input: {}) { id } }')}`,
      headers: { 'apollo-require-preflight': 'true' },
      status: 405,
      code: 'BAD_REQUEST',
    },
  ],
  [
    'a GET without a CSRF preflight header',
    { method: 'GET', path: `?query=${encodeURIComponent('{ __typename }')}`, headers: {}, status: 400, code: 'BAD_REQUEST' },
  ],
  ['a PUT', { method: 'PUT', body: json({ query: '{ __typename }' }), status: 405, code: 'BAD_REQUEST' }],
  ['no query', { body: json({ variables: {} }), status: 400, code: 'BAD_REQUEST' }],
  ['a query that is not a string', { body: json({ query: 42 }), status: 400, code: 'BAD_REQUEST' }],
  ['variables that are not an object', { body: json({ query: '{ __typename }', variables: 'x' }), status: 400, code: 'BAD_REQUEST' }],
  ['a syntax error', { body: json({ query: '{ __typename ' }), status: 400, code: 'GRAPHQL_PARSE_FAILED' }],
  ['more tokens than GRAPHQL_MAX_TOKENS', { body: json({ query: tokenFlood }), status: 400, code: 'GRAPHQL_PARSE_FAILED' }],
  [
    'a document deeper than GRAPHQL_MAX_DEPTH',
    {
      body: json({
        query: `{ __schema { types { fields { type { fields { type { fields { type { fields { type { fields { name } } } } } } } } } } } }`,
      }),
      status: 400,
      code: 'GRAPHQL_VALIDATION_FAILED',
      limit: 'depth',
    },
  ],
  [
    'a wide document (1,001 aliases)',
    {
      body: json({ query: `{ ${Array.from({ length: 1_001 }, (_, i) => `a${i}: __typename`).join(' ')} }` }),
      status: 400,
      code: 'GRAPHQL_VALIDATION_FAILED',
      limit: 'complexity',
    },
  ],
  [
    'a fragment fan-out bomb (2^30 fields)',
    { body: json({ query: fragmentBomb(31) }), status: 400, code: 'GRAPHQL_VALIDATION_FAILED', limit: 'complexity' },
  ],
  ['an unknown field', { body: json({ query: '{ secrets }' }), status: 400, code: 'GRAPHQL_VALIDATION_FAILED' }],
  [
    'an unknown operationName',
    { body: json({ query: 'query A { __typename }', operationName: 'B' }), status: 400, code: 'OPERATION_RESOLUTION_FAILURE' },
  ],
  [
    'huge variables (over HTTP_BODY_LIMIT_BYTES)',
    { body: json({ query: '{ __typename }', variables: { pad: 'x'.repeat(70_000) } }), status: 413, code: 'BAD_REQUEST' },
  ],
  [
    'invalid UTF-8 in the body',
    {
      body: Buffer.concat([Buffer.from('{"query":"{ __typename }","x":"'), Buffer.from([0xff, 0xfe]), Buffer.from('"}')]),
      status: 200,
      code: '',
    },
  ],
  [
    'a garbage bearer token',
    { headers: { authorization: 'Bearer garbage' }, body: json({ query: '{ quota { id } }' }), status: 401, code: 'UNAUTHENTICATED' },
  ],
  [
    'a Basic authorization header',
    { headers: { authorization: 'Basic dXNlcjpwYXNz' }, body: json({ query: '{ quota { id } }' }), status: 401, code: 'UNAUTHENTICATED' },
  ],
  [
    'an alg none token',
    {
      headers: { authorization: `Bearer ${unsignedToken(claims('mallory', { iss: ISSUER, aud: AUDIENCE }))}` },
      body: json({ query: '{ quota { id } }' }),
      status: 401,
      code: 'UNAUTHENTICATED',
    },
  ],
  ['no token for data', { body: json({ query: '{ quota { id } }' }), status: 401, code: 'UNAUTHENTICATED' }],
  [
    'a variable of the wrong type',
    {
      headers: { authorization: `Bearer ${good('victor')}` },
      body: json({ query: 'query($u: ID) { quota(userId: $u) { id } }', variables: { u: { $ne: null } } }),
      status: 400,
      code: 'BAD_USER_INPUT',
    },
  ],
  [
    '__proto__ in variables',
    {
      headers: { authorization: `Bearer ${good('victor')}` },
      body: '{"query":"query($u: ID) { quota(userId: $u) { id } }","variables":{"__proto__":{"u":"someone-else"}}}',
      status: 200,
      code: '',
    },
  ],
  [
    "another user's id",
    {
      headers: { authorization: `Bearer ${good('victor')}` },
      body: json({ query: '{ quota(userId: "wendy") { id } }' }),
      status: 200,
      code: 'FORBIDDEN',
    },
  ],
];

describe('HTTP: refused with a clear status and code', () => {
  it.each(httpCases)('%s', async (_name, c) => {
    const response = await fetch(`${gateway.httpUrl}${c.path ?? ''}`, {
      method: c.method ?? 'POST',
      // GET and explicit content types go as given; everything else is sent as JSON.
      headers:
        c.method === 'GET' || (c.headers && 'content-type' in c.headers) ? c.headers : { 'content-type': 'application/json', ...c.headers },
      body: typeof c.body === 'string' || c.body === undefined ? c.body : new Uint8Array(c.body),
    });
    expect(response.status).toBe(c.status);
    expect(response.headers.get('content-type')).toMatch(/^application\/(graphql-response\+)?json/);
    const body = (await response.json()) as { errors?: { message: string; extensions?: Record<string, unknown> }[]; data?: unknown };
    if (c.code === '') {
      expect(body.errors).toBeUndefined();
    } else {
      expect(body.errors?.[0]?.extensions?.code).toBe(c.code);
      if (c.limit) expect(body.errors?.[0]?.extensions?.limit).toBe(c.limit);
    }
    expect(JSON.stringify(body)).not.toMatch(/stacktrace|node_modules|at .*\(.*\.[jt]s:\d+/);
  });
});

// ------------------------------------------------------------------------------------- WebSocket

type WsStep = { frame: [number, Buffer | string] } | { json: unknown } | { expect: Record<string, unknown> } | { expectError: string };
const init = (jwt = good(uniqueId('ws'))) => ({ json: { type: 'connection_init', payload: { authorization: `Bearer ${jwt}` } } });
const ack = { expect: { type: 'connection_ack' } };
const sub = (id: string, query: string, variables?: unknown) => ({ json: { id, type: 'subscribe', payload: { query, variables } } });

/** Frames in order, then the close code (or `open`: the socket must still answer a ping). */
const wsCases: [string, WsStep[], number | 'open', string?][] = [
  ['a garbage text frame', [{ frame: [0x1, 'hello'] }], 4400],
  ['a JSON array', [{ json: [1, 2] }], 4400],
  ['an unknown message type', [{ json: { type: 'nope' } }], 4400],
  ['a message without a type', [{ json: { id: '1' } }], 4400],
  ['connection_init with a non-object payload', [{ json: { type: 'connection_init', payload: 'x' } }], 4400],
  ['subscribe before connection_init', [sub('1', '{ __typename }')], 4401],
  ['a second connection_init', [init(), ack, init()], 4429],
  [
    'a duplicate subscription id',
    [init(), ack, sub('dup', 'subscription { quotaChanged { eventId } }'), sub('dup', 'subscription { quotaChanged { eventId } }')],
    4409,
  ],
  ['subscribe without a query', [init(), ack, { json: { id: '1', type: 'subscribe', payload: {} } }], 4400],
  [
    'subscribe with variables that are not an object',
    [init(), ack, { json: { id: '1', type: 'subscribe', payload: { query: '{ __typename }', variables: 'x' } } }],
    4400,
  ],
  ['a binary frame of garbage', [{ frame: [0x2, Buffer.from([0, 1, 2, 255])] }], 4400],
  ['a text frame of invalid UTF-8', [{ frame: [0x1, Buffer.from([0x7b, 0xff, 0xfe, 0x7d])] }], 1007],
  [
    'a frame over WS_MAX_PAYLOAD_BYTES',
    [{ frame: [0x1, json({ type: 'connection_init', payload: { pad: 'x'.repeat(MAX_WS_PAYLOAD) } })] }],
    1009,
  ],
  ['a reserved opcode', [{ frame: [0x3, 'x'] }], 1002],
  ['no connection_init within WS_CONNECTION_INIT_TIMEOUT_MS', [], 4408],
  ['an alg none token', [init(unsignedToken(claims('mallory', { iss: ISSUER, aud: AUDIENCE })))], 4403],
  ['a tampered token', [init(tamper(good('mallory')))], 4403],
  ['a syntax error (error on the operation)', [init(), ack, sub('1', '{ __typename '), { expectError: 'GRAPHQL_PARSE_FAILED' }], 'open'],
  ['too many tokens', [init(), ack, sub('1', tokenFlood), { expectError: 'GRAPHQL_PARSE_FAILED' }], 'open'],
  [
    'a wide document (1,001 fields)',
    [init(), ack, sub('1', `{ ${'__typename '.repeat(1_001)} }`), { expectError: 'GRAPHQL_VALIDATION_FAILED' }],
    'open',
  ],
  ['a fragment bomb', [init(), ack, sub('1', fragmentBomb(31)), { expectError: 'GRAPHQL_VALIDATION_FAILED' }], 'open'],
  ['an unknown field', [init(), ack, sub('1', 'subscription { secrets }'), { expectError: 'GRAPHQL_VALIDATION_FAILED' }], 'open'],
  [
    'a variable of the wrong type',
    [init(), ack, sub('1', 'subscription($u: ID) { quotaChanged(userId: $u) { eventId } }', { u: [1] }), { expectError: 'BAD_USER_INPUT' }],
    'open',
  ],
  [
    "another user's events",
    [init(), ack, sub('1', 'subscription { quotaChanged(userId: "someone-else") { eventId } }'), { expectError: 'FORBIDDEN' }],
    'open',
  ],
  ['complete for an unknown id', [init(), ack, { json: { id: 'ghost', type: 'complete' } }], 'open'],
  ['a ping before connection_init (allowed)', [{ json: { type: 'ping' } }, { expect: { type: 'pong' } }, init(), ack], 'open'],
  ['a binary frame with a valid message (read as text)', [{ frame: [0x2, json(init().json)] }, ack], 'open'],
];

describe("WebSocket: closed with the protocol's code, or an error on that operation", () => {
  it.each(wsCases)('%s', async (_name, steps, outcome) => {
    const raw = await connectRaw(gateway.wsUrl);
    try {
      for (const step of steps) {
        if ('frame' in step) raw.frame(step.frame[0], step.frame[1]);
        else if ('json' in step) raw.json(step.json);
        else if ('expect' in step) expect(await raw.message()).toEqual(step.expect);
        else {
          // An `error` message, or a `next` carrying the errors (docs/api.md#authentication-and-authorization allows either).
          const message = await raw.message();
          const errors = (message.type === 'error' ? message.payload : (message.payload as { errors?: unknown })?.errors) as
            { extensions?: { code?: string } }[] | undefined;
          expect(['error', 'next']).toContain(message.type);
          expect(errors?.[0]?.extensions?.code).toBe(step.expectError);
        }
      }
      if (outcome === 'open') {
        raw.json({ type: 'ping', payload: { still: 'here' } });
        let reply = await raw.message('a pong');
        // A `next` carrying errors is followed by its `complete`.
        if (reply.type === 'complete') reply = await raw.message('a pong');
        expect(reply).toEqual({ type: 'pong', payload: { still: 'here' } });
      } else {
        await expect(within(raw.closed, 'the close frame')).resolves.toBe(outcome);
      }
    } finally {
      raw.destroy();
    }
  });

  it('refuses a subprotocol other than graphql-transport-ws with 4406', async () => {
    const raw = await connectRaw(gateway.wsUrl, 'graphql-ws');
    await expect(within(raw.closed, 'the close frame')).resolves.toBe(4406);
    raw.destroy();
  });
});

// ------------------------------------------------------------------------------------------- JWT

const jwtCases: [string, () => string, 'hs' | 'pem'][] = [
  ['alg none', () => unsignedToken(claims('m', { iss: ISSUER, aud: AUDIENCE })), 'hs'],
  ['an expired token', () => good('m', {}, -60), 'hs'],
  ['no sub', () => signHs(TEST_JWT_SECRET, claims(undefined, { iss: ISSUER, aud: AUDIENCE })), 'hs'],
  ['no exp', () => signHs(TEST_JWT_SECRET, { sub: 'm', iss: ISSUER, aud: AUDIENCE }), 'hs'],
  ['a wrong issuer', () => signHs(TEST_JWT_SECRET, claims('m', { iss: 'https://evil.test', aud: AUDIENCE })), 'hs'],
  ['a wrong audience', () => signHs(TEST_JWT_SECRET, claims('m', { iss: ISSUER, aud: 'another-service' })), 'hs'],
  ['no issuer', () => signHs(TEST_JWT_SECRET, claims('m', { aud: AUDIENCE })), 'hs'],
  ['another secret', () => signHs('guessed-secret', claims('m', { iss: ISSUER, aud: AUDIENCE })), 'hs'],
  ['garbage', () => 'ey.garbage.garbage', 'hs'],
  ['not before in the future', () => good('m', { nbf: Math.floor(Date.now() / 1000) + 3_600 }), 'hs'],
  ['HS256 signed with the RSA public key (algorithm confusion)', () => hsSignedWithPublicKey(rsa.publicPem, claims('m')), 'pem'],
  ['alg none on the PEM gateway', () => unsignedToken(claims('m')), 'pem'],
  ['RS256 signed by another key', () => signWith(keyPair('RS256'), claims('m')), 'pem'],
  ["an HS256 token with the HS gateway's secret", () => good('m'), 'pem'],
];

describe('JWT: refused on HTTP (401) and WebSocket (4403)', () => {
  it.each(jwtCases)('%s', async (_name, make, which) => {
    const target = which === 'pem' ? pemGateway : gateway;
    const jwt = make();
    const response = await fetch(target.httpUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${jwt}` },
      body: json({ query: '{ quota { id } }' }),
    });
    expect(response.status).toBe(401);
    expect(((await response.json()) as { errors: { extensions: { code: string } }[] }).errors[0]?.extensions.code).toBe('UNAUTHENTICATED');
    await expect(wsClient(target.wsUrl, { authorization: `Bearer ${jwt}` }).closed).resolves.toBe(4403);
  });

  it('accepts the good tokens of each gateway (the control case)', async () => {
    await wsClient(gateway.wsUrl, { authorization: `Bearer ${good(uniqueId('ok'))}` }).connected;
    await wsClient(pemGateway.wsUrl, { authorization: `Bearer ${signWith(rsa, claims(uniqueId('ok')))}` }).connected;
  });
});

// ----------------------------------------------------------------------------------------- after

describe('after all of it', () => {
  it('the first subscriber is still connected and a good event still arrives', async () => {
    await peer.publish('quota.updated', { userId: SENTINEL, usage: { currentDevices: 7 } }, { messageId: `final-${SENTINEL}` });
    expect((await sentinel.next()).data?.quotaChanged).toMatchObject({
      eventId: `final-${SENTINEL}`,
      kind: 'UPDATED',
      usage: { currentDevices: 7 },
    });
    expect(sentinel.pending()).toBe(0);
    const ready = await fetch(`${gateway.app.url}/readyz`);
    expect(ready.status).toBe(200);
    console.log(
      `hostile-input cases: ${deadLetters.length + accepted.length + 1} AMQP, ${httpCases.length} HTTP, ${wsCases.length + 1} WebSocket, ${jwtCases.length + 1} JWT`,
    );
  });
});

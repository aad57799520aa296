/**
 * `POST /dev/token`, behind GraphiQL's "act as" control: on the embedded default with the
 * development secret it signs short-lived tokens the gateway accepts; with a configured
 * JWT_SECRET, on real services and in production it does not exist, and the page is told so.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createTokenVerifier } from '../../src/auth/jwt';
import { realServicesEnv, startGateway, stopGateways, type TestGateway } from '../helpers/gateway';
import { createTestDatabase, uniqueId, type TestDatabase } from '../helpers/services';

jest.setTimeout(60_000);

let dataDir: string | undefined;
let database: TestDatabase | undefined;

beforeAll(async () => {
  dataDir = await mkdtemp(path.join(os.tmpdir(), 'cpr-dev-token-'));
});

afterAll(async () => {
  await stopGateways();
  await database?.drop();
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

const embeddedGateway = (env: Record<string, string | undefined> = {}) =>
  startGateway({ DATA_DIR: path.join(dataDir as string, uniqueId('db')), JWT_SECRET: undefined, ...env });

function devToken(g: TestGateway, body: unknown, contentType = 'application/json'): Promise<Response> {
  return fetch(`${g.app.url}/dev/token`, {
    method: 'POST',
    headers: { 'content-type': contentType },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

async function pageConfig(g: TestGateway): Promise<unknown> {
  const html = await (await fetch(`${g.app.url}/graphiql`)).text();
  const match = /<script type="application\/json" id="graphiql-config">(.*?)<\/script>/s.exec(html);
  return match ? JSON.parse(match[1] as string) : undefined;
}

describe('on the embedded default with the development secret', () => {
  let gateway: TestGateway;
  beforeAll(async () => {
    gateway = await embeddedGateway();
  });

  it('signs 15-minute user and admin tokens that the gateway accepts', async () => {
    expect(gateway.config.jwt.usingDevelopmentSecret).toBe(true);
    expect(await pageConfig(gateway)).toEqual({ tokenHint: true, embedded: true, devTokens: true });
    const verifier = createTokenVerifier(gateway.config.jwt);
    const user = uniqueId('lou');

    const asUser = await devToken(gateway, { sub: user, admin: false });
    expect(asUser.status).toBe(200);
    expect(asUser.headers.get('cache-control')).toBe('no-store');
    const minted = (await asUser.json()) as { token: string; expiresAt: string };
    const verified = await verifier.verify(minted.token);
    expect([verified.id, verified.isAdmin]).toEqual([user, false]);
    const claims = JSON.parse(Buffer.from(minted.token.split('.')[1] ?? '', 'base64url').toString()) as { iat: number; exp: number };
    expect(claims.exp - claims.iat).toBe(900);
    expect(new Date(minted.expiresAt).getTime() / 1_000).toBeCloseTo(claims.exp, -1);

    const asAdmin = (await (await devToken(gateway, { sub: user, admin: true })).json()) as { token: string };
    expect((await verifier.verify(asAdmin.token)).isAdmin).toBe(true);
    // `admin` may be left out: a user token.
    const plain = (await (await devToken(gateway, { sub: user })).json()) as { token: string };
    expect((await verifier.verify(plain.token)).isAdmin).toBe(false);

    // The token works on the API itself.
    const answer = await fetch(gateway.httpUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${minted.token}` },
      body: JSON.stringify({ query: '{ quota { userId } }' }),
    });
    expect(await answer.json()).toEqual({ data: { quota: null } });
  });

  it('answers a bad body with 400 and what is wrong, and keeps serving', async () => {
    const cases: [unknown, string][] = [
      [{}, 'sub must be a user id'],
      [{ sub: '' }, 'sub must be a user id'],
      [{ sub: 'two words' }, 'sub must be a user id'],
      [{ sub: 'x'.repeat(129) }, 'sub must be a user id'],
      [{ sub: 42 }, 'sub must be a user id'],
      [{ sub: 'alice', admin: 'yes' }, 'admin must be true or false'],
    ];
    for (const [body, message] of cases) {
      const response = await devToken(gateway, body);
      const answer = (await response.json()) as { errors: { message: string; extensions: { code: string } }[] };
      expect([body, response.status, answer.errors[0]?.extensions.code]).toEqual([body, 400, 'BAD_USER_INPUT']);
      expect(answer.errors[0]?.message).toContain(message);
    }
    const malformed = await devToken(gateway, '{"sub": ');
    expect(malformed.status).toBe(400);
    expect(((await malformed.json()) as { errors: unknown[] }).errors).toHaveLength(1);
    expect((await devToken(gateway, { sub: 'alice' })).status).toBe(200);
  });
});

it('does not exist with a configured JWT_SECRET, even on the embedded default', async () => {
  const gateway = await embeddedGateway({ JWT_SECRET: 'a-secret-someone-configured' });
  expect((await devToken(gateway, { sub: 'alice', admin: true })).status).toBe(404);
  expect(await pageConfig(gateway)).toEqual({ tokenHint: true, embedded: true, devTokens: false });
});

it('does not exist on real services, nor in production', async () => {
  database = await createTestDatabase();
  const development = await startGateway(realServicesEnv(database.url));
  const production = await startGateway(realServicesEnv(database.url, { NODE_ENV: 'production' }));
  expect(production.config.production).toBe(true);
  for (const [g, expected] of [
    [development, { tokenHint: true, embedded: false, devTokens: false }],
    [production, { tokenHint: false, embedded: false, devTokens: false }],
  ] as const) {
    expect((await devToken(g, { sub: 'alice', admin: true })).status).toBe(404);
    expect(await pageConfig(g)).toEqual(expected);
  }
});

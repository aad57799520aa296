/**
 * Token verification (docs/api.md#authentication-and-authorization) for each key kind: HS256 secret, PEM public key (RS256,
 * ES256), JWKS served over real HTTP on 127.0.0.1 (cached; unknown `kid` refetches, rate limited).
 */
import { createTokenVerifier, TokenError } from '../../src/auth/jwt';
import { loadConfig } from '../../src/config';
import {
  claims,
  hsSignedWithPublicKey,
  keyPair,
  signHs,
  signWith,
  startJwksServer,
  tamper,
  unsignedToken,
  type JwksServer,
} from '../helpers/jwt';

const SECRET = 'unit-test-secret';
const rsa = keyPair('RS256');
const ec = keyPair('ES256');

const verifierFor = (env: Record<string, string>) => createTokenVerifier(loadConfig(env).jwt);

async function refusal(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(TokenError);
    return (error as Error).message;
  }
  throw new Error('the token was accepted');
}

describe('HS256 secret', () => {
  const verifier = verifierFor({ JWT_SECRET: SECRET });

  it('accepts a valid token and maps the platform claims', async () => {
    const user = await verifier.verify(
      signHs(SECRET, claims('u1', { roles: ['user', 7], tenantId: 't1', username: 'ann', isSuperAdmin: false })),
    );
    expect(user).toMatchObject({ id: 'u1', roles: ['user'], tenantId: 't1', username: 'ann', isAdmin: false });
    expect(user.expiresAt).toBeGreaterThan(Date.now());
    expect((await verifier.verify(signHs(SECRET, claims('a', { roles: ['super_admin'] })))).isAdmin).toBe(true);
    expect((await verifier.verify(signHs(SECRET, claims('a', { isSuperAdmin: true })))).isAdmin).toBe(true);
  });

  it.each([
    ['alg none', () => unsignedToken(claims('u1')), /algorithm|Unsupported|alg/i],
    ['another secret', () => signHs('not-the-secret', claims('u1')), /signature/],
    ['a tampered signature', () => tamper(signHs(SECRET, claims('u1'))), /signature/],
    ['an RS256 token (other family)', () => signWith(rsa, claims('u1')), /algorithm not allowed/],
    ['no sub', () => signHs(SECRET, claims(undefined)), /sub/],
    ['an empty sub', () => signHs(SECRET, claims('')), /sub/],
    ['no exp', () => signHs(SECRET, { sub: 'u1', roles: [] }), /exp/],
    ['an expired exp', () => signHs(SECRET, claims('u1', {}, -60)), /expired/],
    ['garbage', () => 'not.a.jwt', /invalid token/],
    ['an empty string', () => '', /invalid token/],
  ])('refuses %s', async (_name, make, reason) => {
    expect(await refusal(verifier.verify(make()))).toMatch(reason);
  });

  it('allows the configured clock tolerance on exp and no more', async () => {
    const lenient = verifierFor({ JWT_SECRET: SECRET, JWT_CLOCK_TOLERANCE_SEC: '30' });
    await expect(lenient.verify(signHs(SECRET, claims('u1', {}, -10)))).resolves.toMatchObject({ id: 'u1' });
    expect(await refusal(lenient.verify(signHs(SECRET, claims('u1', {}, -60))))).toMatch(/expired/);
  });

  it('checks iss and aud when configured', async () => {
    const strict = verifierFor({ JWT_SECRET: SECRET, JWT_ISSUER: 'https://id.example', JWT_AUDIENCE: 'realtime' });
    await expect(strict.verify(signHs(SECRET, claims('u1', { iss: 'https://id.example', aud: 'realtime' })))).resolves.toMatchObject({
      id: 'u1',
    });
    await expect(strict.verify(signHs(SECRET, claims('u1', { iss: 'https://id.example', aud: ['x', 'realtime'] })))).resolves.toMatchObject(
      { id: 'u1' },
    );
    expect(await refusal(strict.verify(signHs(SECRET, claims('u1', { iss: 'https://evil.example', aud: 'realtime' }))))).toMatch(/iss/);
    expect(await refusal(strict.verify(signHs(SECRET, claims('u1', { iss: 'https://id.example', aud: 'other' }))))).toMatch(/aud/);
    expect(await refusal(strict.verify(signHs(SECRET, claims('u1'))))).toMatch(/iss/);
  });
});

describe('PEM public key', () => {
  it("RS256: accepts the key pair's tokens; refuses HS256 signed with the public key (algorithm confusion) and alg none", async () => {
    const verifier = verifierFor({ JWT_PUBLIC_KEY: rsa.publicPem.replace(/\n/g, '\\n') });
    await expect(verifier.verify(signWith(rsa, claims('u1')))).resolves.toMatchObject({ id: 'u1' });
    expect(await refusal(verifier.verify(hsSignedWithPublicKey(rsa.publicPem, claims('u1'))))).toMatch(/algorithm not allowed/);
    expect(await refusal(verifier.verify(unsignedToken(claims('u1'))))).toMatch(/invalid token/);
    expect(await refusal(verifier.verify(signWith(keyPair('RS256'), claims('u1'))))).toMatch(/signature/);
    expect(await refusal(verifier.verify(signWith(ec, claims('u1'))))).toMatch(/algorithm not allowed/);
    // The secret is ignored once a public key is configured.
    const both = verifierFor({ JWT_PUBLIC_KEY: rsa.publicPem, JWT_SECRET: SECRET });
    expect(await refusal(both.verify(signHs(SECRET, claims('u1'))))).toMatch(/algorithm not allowed/);
  });

  it("ES256: accepts the key pair's tokens and refuses RS256", async () => {
    const verifier = verifierFor({ JWT_PUBLIC_KEY: ec.publicPem });
    await expect(verifier.verify(signWith(ec, claims('u2', { roles: ['admin'] })))).resolves.toMatchObject({ id: 'u2', isAdmin: true });
    expect(await refusal(verifier.verify(signWith(rsa, claims('u2'))))).toMatch(/algorithm not allowed/);
    expect(await refusal(verifier.verify(hsSignedWithPublicKey(ec.publicPem, claims('u2'))))).toMatch(/algorithm not allowed/);
  });
});

describe('JWKS over HTTP', () => {
  let jwks: JwksServer;
  beforeEach(async () => {
    jwks = await startJwksServer([rsa, ec]);
  });
  afterEach(async () => {
    await jwks.close();
  });

  it('verifies RS256 and ES256 tokens by kid, fetching the key set once and caching it', async () => {
    const verifier = verifierFor({ JWT_JWKS_URL: jwks.url });
    await expect(verifier.verify(signWith(rsa, claims('u1')))).resolves.toMatchObject({ id: 'u1' });
    await expect(verifier.verify(signWith(ec, claims('u2')))).resolves.toMatchObject({ id: 'u2' });
    for (let i = 0; i < 20; i++) await verifier.verify(signWith(rsa, claims(`u${i}`)));
    expect(jwks.requests()).toBe(1);
  });

  it('refetches on an unknown kid (rotation), at most once per cooldown', async () => {
    const verifier = verifierFor({ JWT_JWKS_URL: jwks.url, JWT_JWKS_COOLDOWN_MS: '60000' });
    await verifier.verify(signWith(rsa, claims('u1')));
    expect(jwks.requests()).toBe(1);
    // Forged kids within the cooldown: refused without hammering the endpoint.
    for (let i = 0; i < 10; i++) {
      expect(await refusal(verifier.verify(signWith(keyPair('ES256', `forged-${i}`), claims('u1'))))).toMatch(/kid|signature/);
    }
    expect(jwks.requests()).toBe(1);

    const rotatingVerifier = verifierFor({ JWT_JWKS_URL: jwks.url, JWT_JWKS_COOLDOWN_MS: '0' });
    await rotatingVerifier.verify(signWith(rsa, claims('u1')));
    const before = jwks.requests();
    const rotated = keyPair('RS256', 'rotated-key');
    jwks.publish([rotated]);
    await expect(rotatingVerifier.verify(signWith(rotated, claims('u3')))).resolves.toMatchObject({ id: 'u3' });
    expect(jwks.requests()).toBe(before + 1);
  });

  it('refuses alg none, HS256 keyed with a published public key, tampered and kid-less-but-unknown tokens', async () => {
    const verifier = verifierFor({ JWT_JWKS_URL: jwks.url });
    expect(await refusal(verifier.verify(unsignedToken(claims('u1'))))).toMatch(/invalid token/);
    expect(await refusal(verifier.verify(hsSignedWithPublicKey(rsa.publicPem, claims('u1'), rsa.kid)))).toMatch(/algorithm not allowed/);
    expect(await refusal(verifier.verify(tamper(signWith(rsa, claims('u1')))))).toMatch(/signature/);
    expect(await refusal(verifier.verify(signWith(rsa, claims(undefined))))).toMatch(/sub/);
    expect(await refusal(verifier.verify(signWith(rsa, claims('u1', {}, -60))))).toMatch(/expired/);
  });

  it('refuses every token while the endpoint is unreachable, without crashing', async () => {
    await jwks.close();
    const verifier = verifierFor({ JWT_JWKS_URL: jwks.url });
    expect(await refusal(verifier.verify(signWith(rsa, claims('u1'))))).toMatch(/invalid token/);
    jwks = await startJwksServer([rsa]); // for afterEach
  });
});

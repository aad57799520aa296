/**
 * Tokens the way an identity service (or an attacker) would make them: RS256/ES256 key pairs, a
 * JWKS served over real HTTP on 127.0.0.1, and hand-assembled hostile tokens (`alg: none`, HS256
 * keyed with the RSA public key). Test-side only: the gateway verifies with jose.
 *
 * Signed with `node:crypto`, not jose: the test tokens come from an implementation independent of
 * the verifier (a shared bug would cancel out), and signing stays synchronous, which the hundreds
 * of `token(...)` calls in the suite rely on (jose only signs asynchronously).
 */
import { createHmac, generateKeyPairSync, randomUUID, sign, timingSafeEqual, type KeyObject } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { track } from './teardown';

export interface KeyPair {
  readonly kid: string;
  readonly alg: 'RS256' | 'ES256';
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
  readonly publicPem: string;
}

export function keyPair(alg: 'RS256' | 'ES256', kid: string = randomUUID()): KeyPair {
  const { privateKey, publicKey } =
    alg === 'RS256' ? generateKeyPairSync('rsa', { modulusLength: 2048 }) : generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { kid, alg, privateKey, publicKey, publicPem: publicKey.export({ type: 'spki', format: 'pem' }).toString() };
}

export type Claims = Record<string, unknown>;

const nowSec = () => Math.floor(Date.now() / 1000);

/** Claims of a valid platform token for `sub`, expiring in `ttlSec`. */
export function claims(sub: string | undefined, extra: Claims = {}, ttlSec = 600): Claims {
  return { ...(sub === undefined ? {} : { sub }), roles: [], iat: nowSec(), exp: nowSec() + ttlSec, ...extra };
}

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

/** Signs with a key pair (its `kid` in the header unless `kid: null`). */
export function signWith(pair: KeyPair, payload: Claims, options: { kid?: string | null } = {}): string {
  const kid = options.kid === undefined ? pair.kid : options.kid;
  const input = `${b64({ alg: pair.alg, typ: 'JWT', ...(kid === null ? {} : { kid }) })}.${b64(payload)}`;
  // JWS wants ES256 signatures as the raw r||s pair (RFC 7518 §3.4), not Node's default DER.
  const key = pair.alg === 'ES256' ? { key: pair.privateKey, dsaEncoding: 'ieee-p1363' as const } : pair.privateKey;
  return `${input}.${sign('sha256', Buffer.from(input), key).toString('base64url')}`;
}

export function signHs(secret: string, payload: Claims): string {
  const input = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64(payload)}`;
  return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
}

/**
 * The claims of an HS256 token signed with `secret` and not expired, else undefined. For the
 * benchmark's baseline servers, whose message handlers are synchronous.
 */
export function verifyHs(token: string, secret: string): Claims | undefined {
  const [header, payload, signature] = token.split('.');
  if (header === undefined || payload === undefined || signature === undefined) return undefined;
  const expected = createHmac('sha256', secret).update(`${header}.${payload}`).digest();
  const given = Buffer.from(signature, 'base64url');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return undefined;
  try {
    if ((JSON.parse(Buffer.from(header, 'base64url').toString()) as Claims).alg !== 'HS256') return undefined;
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString()) as Claims;
    return typeof claims.exp === 'number' && claims.exp * 1000 > Date.now() ? claims : undefined;
  } catch {
    return undefined;
  }
}

/** `alg: none`, no signature. */
export function unsignedToken(payload: Claims): string {
  return `${b64({ alg: 'none', typ: 'JWT' })}.${b64(payload)}.`;
}

/** Algorithm confusion: HS256 keyed with the RSA public key's PEM text. */
export function hsSignedWithPublicKey(publicPem: string, payload: Claims, kid?: string): string {
  const input = `${b64({ alg: 'HS256', typ: 'JWT', ...(kid ? { kid } : {}) })}.${b64(payload)}`;
  return `${input}.${createHmac('sha256', publicPem).update(input).digest('base64url')}`;
}

/** A valid token with its signature's last bytes changed. */
export function tamper(token: string): string {
  const [h, p, s] = token.split('.') as [string, string, string];
  const bytes = Buffer.from(s, 'base64url');
  bytes[bytes.length - 1] = (bytes[bytes.length - 1] as number) ^ 0xff;
  return `${h}.${p}.${bytes.toString('base64url')}`;
}

export interface JwksServer {
  readonly url: string;
  /** Requests served so far. */
  readonly requests: () => number;
  /** Replaces the published keys (key rotation). */
  publish(pairs: readonly KeyPair[]): void;
  close(): Promise<void>;
}

/** A JWKS endpoint on a real socket (127.0.0.1, free port). */
export async function startJwksServer(pairs: readonly KeyPair[]): Promise<JwksServer> {
  let keys = pairs;
  let requests = 0;
  const server = http.createServer((req, res) => {
    requests++;
    const body = JSON.stringify({
      keys: keys.map((pair) => ({ ...pair.publicKey.export({ format: 'jwk' }), kid: pair.kid, alg: pair.alg, use: 'sig' })),
    });
    res.writeHead(200, { 'content-type': 'application/json' }).end(body);
  });
  const tracked = track(
    'JWKS server',
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/.well-known/jwks.json`,
    requests: () => requests,
    publish(next) {
      keys = next;
    },
    close: () => tracked.close(),
  };
}

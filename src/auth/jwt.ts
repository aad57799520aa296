/**
 * JWT verification (docs/api.md#authentication-and-authorization) with `jose` 5 (maintained, ships a CommonJS build that jest can
 * load; jose 6 is ESM-only). The accepted algorithms follow the configured key, never the token:
 *
 * - `JWT_SECRET`: HS256/384/512 only;
 * - `JWT_PUBLIC_KEY` (PEM): the family of that key only (RS/PS for RSA, ES for EC, EdDSA);
 * - `JWT_JWKS_URL`: RS/PS/ES/EdDSA, the key picked by `kid` (see ./jwks.ts).
 *
 * So an HS256 token "signed" with the public key as its secret (algorithm confusion) and
 * `alg: none` are always refused. `exp` and `sub` are required; `iss`/`aud` are checked when
 * configured; `JWT_CLOCK_TOLERANCE_SEC` of leeway on `exp`/`nbf`.
 *
 * Development tokens are minted with jose too, see `signDevelopmentToken`; the tests mint theirs
 * independently (test/helpers/jwt.ts).
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import { errors as joseErrors, jwtVerify, SignJWT, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import type { JwtOptions } from '../contracts/options';
import { isAdminClaims, type AuthUser } from './auth-user';
import { createJwksKeyResolver } from './jwks';

export class TokenError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TokenError';
  }
}

export interface TokenVerifier {
  /** Verifies a raw JWT (no `Bearer `). Rejects with `TokenError` saying why it is refused. */
  verify(token: string): Promise<AuthUser>;
}

const HS = ['HS256', 'HS384', 'HS512'];
const RSA = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512'];
/** Node's names of the EC curves and the one ES algorithm each verifies. */
const EC_CURVES: Readonly<Record<string, string>> = { prime256v1: 'ES256', secp384r1: 'ES384', secp521r1: 'ES512' };
const ASYMMETRIC = [...RSA, 'ES256', 'ES384', 'ES512', 'EdDSA'];

/** The algorithms a PEM public key can verify: only its own family. */
function algorithmsForKey(key: KeyObject): string[] {
  switch (key.asymmetricKeyType) {
    case 'rsa':
      return RSA;
    case 'rsa-pss':
      return ['PS256', 'PS384', 'PS512'];
    case 'ec': {
      const algorithm = EC_CURVES[key.asymmetricKeyDetails?.namedCurve ?? ''];
      return algorithm ? [algorithm] : [];
    }
    case 'ed25519':
    case 'ed448':
      return ['EdDSA'];
    default:
      return [];
  }
}

/** Distinct role lists kept as one frozen array each (a cap, not an LRU: tokens carry a few). */
const MAX_SHARED_ROLE_LISTS = 1_000;
const roleLists = new Map<string, readonly string[]>();

/**
 * The same roles as one shared array: every open connection keeps its user's (heap per socket,
 * docs/decisions/0605), and most users have one of a few role lists.
 */
function sharedRoles(roles: string[]): readonly string[] {
  // JSON: unambiguous whatever the role names hold.
  const key = JSON.stringify(roles);
  const shared = roleLists.get(key);
  if (shared !== undefined) return shared;
  const frozen = Object.freeze(roles);
  if (roleLists.size < MAX_SHARED_ROLE_LISTS) roleLists.set(key, frozen);
  return frozen;
}

export function createTokenVerifier(config: JwtOptions): TokenVerifier {
  let key: Uint8Array | KeyObject | JWTVerifyGetKey;
  let algorithms: string[];
  if (config.jwksUrl) {
    key = createJwksKeyResolver({ url: config.jwksUrl, cacheMs: config.jwksCacheMs, cooldownMs: config.jwksCooldownMs });
    algorithms = ASYMMETRIC;
  } else if (config.publicKey) {
    const publicKey = createPublicKey(config.publicKey);
    key = publicKey;
    algorithms = algorithmsForKey(publicKey);
  } else if (config.secret) {
    key = new TextEncoder().encode(config.secret);
    algorithms = HS;
  } else {
    throw new Error('JWT verification needs JWT_SECRET, JWT_PUBLIC_KEY or JWT_JWKS_URL');
  }
  const options = {
    algorithms,
    issuer: config.issuer,
    audience: config.audience,
    clockTolerance: config.clockToleranceSec,
    requiredClaims: ['exp', 'sub'],
  };

  return {
    async verify(token) {
      let claims: JWTPayload;
      try {
        // One call per key kind keeps jose's overloads (static key vs key resolver) typed.
        ({ payload: claims } = typeof key === 'function' ? await jwtVerify(token, key, options) : await jwtVerify(token, key, options));
      } catch (error) {
        throw new TokenError(describe(error));
      }
      if (typeof claims.sub !== 'string' || claims.sub.trim() === '') throw new TokenError('invalid token: no sub');
      if (typeof claims.exp !== 'number') throw new TokenError('invalid token: no exp');
      const roles = sharedRoles(Array.isArray(claims.roles) ? claims.roles.filter((r): r is string => typeof r === 'string') : []);
      // One shape for every user (issuedAt present, possibly undefined): a connection keeps it.
      return {
        id: claims.sub,
        roles,
        tenantId: typeof claims.tenantId === 'string' ? claims.tenantId : undefined,
        username: typeof claims.username === 'string' ? claims.username : undefined,
        isAdmin: isAdminClaims(roles, claims.isSuperAdmin),
        expiresAt: claims.exp * 1000,
        // Revocation compares it (./revocation.ts): a token issued before it is refused.
        issuedAt: typeof claims.iat === 'number' ? claims.iat * 1000 : undefined,
      };
    },
  };
}

/** A short, client-safe reason (no key material, no stack). */
function describe(error: unknown): string {
  if (error instanceof joseErrors.JWTExpired) return 'token expired';
  if (error instanceof joseErrors.JWTClaimValidationFailed)
    return `invalid token: ${error.claim} claim ${error.reason === 'missing' ? 'missing' : 'check failed'}`;
  if (error instanceof joseErrors.JOSEAlgNotAllowed) return 'invalid token: algorithm not allowed';
  if (error instanceof joseErrors.JWSSignatureVerificationFailed) return 'invalid token: bad signature';
  if (error instanceof joseErrors.JWKSNoMatchingKey) return 'invalid token: no key matches its kid';
  if (error instanceof joseErrors.JOSEError) return `invalid token: ${error.message}`;
  return 'invalid token';
}

/** `Bearer <jwt>` (case-insensitive scheme) -> `<jwt>`; a bare token is accepted as is. */
export function stripBearer(value: string): string {
  const match = /^\s*bearer\s+(.+?)\s*$/i.exec(value);
  return match ? (match[1] as string) : value.trim();
}

/** Mints a token with the configured HS secret (development only: the CLIs, never production). */
export async function signDevelopmentToken(
  secret: string,
  claims: { sub: string; roles?: string[]; isSuperAdmin?: boolean; tenantId?: string; username?: string },
  options: { expiresInSec?: number; issuer?: string; audience?: string } = {},
): Promise<string> {
  const token = new SignJWT({ roles: [], ...claims })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + (options.expiresInSec ?? 3_600));
  if (options.issuer) token.setIssuer(options.issuer);
  if (options.audience) token.setAudience(options.audience);
  return token.sign(new TextEncoder().encode(secret));
}

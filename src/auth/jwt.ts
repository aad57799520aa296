/**
 * JWT verification with `jsonwebtoken` (maintained, CommonJS). The accepted algorithms follow the
 * configured key so an HS256 token can never be checked against a public key (algorithm
 * confusion) and `alg: none` is always refused.
 */
import jwt from 'jsonwebtoken';
import type { JwtConfig } from '../config';
import { isAdminClaims, type AuthUser } from './auth-user';

export class TokenError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TokenError';
  }
}

export interface TokenVerifier {
  /** Verifies a raw JWT (no `Bearer `). Throws `TokenError` saying why it is refused. */
  verify(token: string): AuthUser;
}

const HS = ['HS256', 'HS384', 'HS512'] as const;
const ASYMMETRIC = ['RS256', 'RS384', 'RS512', 'ES256', 'ES384', 'ES512', 'PS256', 'PS384', 'PS512'] as const;

export function createTokenVerifier(config: JwtConfig): TokenVerifier {
  const key = config.publicKey ?? config.secret;
  if (!key) throw new Error('JWT verification needs JWT_SECRET or JWT_PUBLIC_KEY');
  const algorithms = config.publicKey ? [...ASYMMETRIC] : [...HS];

  return {
    verify(token) {
      let claims: string | jwt.JwtPayload;
      try {
        claims = jwt.verify(token, key, {
          algorithms,
          issuer: config.issuer,
          audience: config.audience,
          clockTolerance: config.clockToleranceSec,
        });
      } catch (error) {
        if (error instanceof jwt.TokenExpiredError) throw new TokenError('token expired');
        throw new TokenError(`invalid token: ${error instanceof Error ? error.message : String(error)}`);
      }
      if (typeof claims === 'string') throw new TokenError('invalid token: payload is not a JSON object');
      if (typeof claims.sub !== 'string' || claims.sub === '') throw new TokenError('invalid token: no sub');
      if (typeof claims.exp !== 'number') throw new TokenError('invalid token: no exp');
      const roles = Array.isArray(claims.roles) ? claims.roles.filter((r): r is string => typeof r === 'string') : [];
      return {
        id: claims.sub,
        roles,
        tenantId: typeof claims.tenantId === 'string' ? claims.tenantId : undefined,
        username: typeof claims.username === 'string' ? claims.username : undefined,
        isAdmin: isAdminClaims(roles, claims.isSuperAdmin),
        expiresAt: claims.exp * 1000,
      };
    },
  };
}

/** `Bearer <jwt>` (case-insensitive scheme) -> `<jwt>`; a bare token is accepted as is. */
export function stripBearer(value: string): string {
  const match = /^\s*bearer\s+(.+?)\s*$/i.exec(value);
  return match ? (match[1] as string) : value.trim();
}

/** Mints a token with the configured HS secret (development and tests only). */
export function signDevelopmentToken(
  secret: string,
  claims: { sub: string; roles?: string[]; isSuperAdmin?: boolean; tenantId?: string; username?: string },
  options: { expiresInSec?: number; issuer?: string; audience?: string } = {},
): string {
  return jwt.sign({ roles: [], ...claims }, secret, {
    algorithm: 'HS256',
    expiresIn: options.expiresInSec ?? 3_600,
    ...(options.issuer ? { issuer: options.issuer } : {}),
    ...(options.audience ? { audience: options.audience } : {}),
  });
}

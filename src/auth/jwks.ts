/**
 * Keys from a JWKS endpoint (`JWT_JWKS_URL`), with jose's remote key set: the set is fetched on
 * first use and cached for `JWT_JWKS_CACHE_MS`; a token whose `kid` is not in the cached set
 * triggers a refetch (key rotation), at most once per `JWT_JWKS_COOLDOWN_MS`, so a stream of
 * tokens with made-up `kid`s costs the identity service one request per cooldown.
 */
import { createRemoteJWKSet, type JWTVerifyGetKey } from 'jose';

export interface JwksOptions {
  readonly url: string;
  readonly cacheMs: number;
  readonly cooldownMs: number;
  /** Abort a fetch after this long. @default 5_000 */
  readonly timeoutMs?: number;
}

export function createJwksKeyResolver(options: JwksOptions): JWTVerifyGetKey {
  return createRemoteJWKSet(new URL(options.url), {
    cacheMaxAge: options.cacheMs,
    cooldownDuration: options.cooldownMs,
    timeoutDuration: options.timeoutMs ?? 5_000,
  });
}

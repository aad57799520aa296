/**
 * The option types the layers below the wiring take: `config.ts` reads the environment and
 * builds these (its `Config` is made of them), while `auth/` and `infra/` only know the shapes,
 * so they never import the composition root. Each field names the variable it comes from; the
 * variable's type, range, default and meaning are in its declaration in `config.ts`'s `OPTIONS`.
 */

/** How tokens are verified: `JWT_*`. */
export interface JwtOptions {
  /** `JWT_SECRET`, or the development secret outside production; undefined with a key or JWKS. */
  readonly secret?: string;
  /** `JWT_PUBLIC_KEY` (takes precedence over the secret; undefined with a JWKS URL). */
  readonly publicKey?: string;
  /** `JWT_JWKS_URL` (takes precedence over key and secret). */
  readonly jwksUrl?: string;
  /** `JWT_JWKS_CACHE_MS`. */
  readonly jwksCacheMs: number;
  /** `JWT_JWKS_COOLDOWN_MS`. */
  readonly jwksCooldownMs: number;
  /** `JWT_ISSUER`. */
  readonly issuer?: string;
  /** `JWT_AUDIENCE`. */
  readonly audience?: string;
  /** `JWT_CLOCK_TOLERANCE_SEC`. */
  readonly clockToleranceSec: number;
  /** True when the secret is the built-in development one (never in production). */
  readonly usingDevelopmentSecret: boolean;
}

/** The broker's names and ingest limits, the same with the in-process bus. */
export interface AmqpNames {
  /** `AMQP_EXCHANGE`. */
  readonly exchange: string;
  /** `AMQP_QUEUE`. */
  readonly queue: string;
  /** `AMQP_DLX`. */
  readonly deadLetterExchange: string;
  /** `AMQP_DLQ`. */
  readonly deadLetterQueue: string;
  /** `AMQP_PREFETCH`. */
  readonly prefetch: number;
  /** `AMQP_PARTITIONS`: 0 is the unpartitioned topology. */
  readonly partitions: number;
  /** `EVENT_MAX_BYTES`. */
  readonly maxMessageBytes: number;
  /** `AMQP_REQUEUE_DELAY_MS`. */
  readonly requeueDelayMs: number;
  /** `EVENT_OWNER_ATTEMPTS`. */
  readonly ownerAttempts: number;
}

/** Which database the gateway opens. */
export type DatabaseTarget =
  /** `DATABASE_URL` set. */
  | { readonly kind: 'postgres'; readonly url: string }
  /** No `DATABASE_URL`: embedded PostgreSQL (PGlite) in `DATA_DIR`, resolved to an absolute path. */
  | { readonly kind: 'embedded'; readonly dataDir: string };

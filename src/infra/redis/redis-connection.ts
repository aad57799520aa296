/**
 * One place that turns `REDIS_URL` into an ioredis client: a `Redis` for one server, a `Cluster`
 * for `redis+cluster://` (lib/redis-url.ts). Everything else in infra/redis takes either, and
 * asks `isCluster` only where the two differ (sharded pub/sub, pipelines across slots).
 */
import Redis, { Cluster, type RedisOptions } from 'ioredis';
import { isRedisClusterUrl, parseRedisClusterUrl } from '../../lib/redis-url';

export type RedisClient = Redis | Cluster;

export interface ConnectOptions {
  readonly connectionName: string;
  readonly maxRetriesPerRequest: number;
  readonly retryStrategy: (attempt: number) => number | null;
  /**
   * Cluster only: one extra connection per master for SSUBSCRIBE, so each shard's channels are
   * subscribed on the node that owns them (the subscriber of the pub/sub adapter). @default false
   */
  readonly shardedSubscribers?: boolean;
}

export function isCluster(client: RedisClient): client is Cluster {
  return client instanceof Cluster;
}

export function connectRedis(url: string, options: ConnectOptions): RedisClient {
  const { connectionName, maxRetriesPerRequest, retryStrategy } = options;
  if (!isRedisClusterUrl(url)) return new Redis(url, { connectionName, maxRetriesPerRequest, retryStrategy });
  const target = parseRedisClusterUrl(url);
  const redisOptions: RedisOptions = {
    connectionName,
    maxRetriesPerRequest,
    ...(target.username !== undefined ? { username: target.username } : {}),
    ...(target.password !== undefined ? { password: target.password } : {}),
    ...(target.tls ? { tls: {} } : {}),
  };
  return new Cluster([...target.nodes], {
    redisOptions,
    clusterRetryStrategy: retryStrategy,
    // A node that restarts without slot changes (a replica, a master back after a blip) is
    // reconnected rather than left until a MOVED tells the client.
    clusterNodeRetryStrategy: retryStrategy,
    shardedSubscribers: options.shardedSubscribers === true,
    // Commands for different slots are batched per node; a script's keys are in one slot.
    enableAutoPipelining: true,
  });
}

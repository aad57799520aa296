/**
 * `REDIS_URL` names one Redis (`redis://`, `rediss://`) or a Redis Cluster:
 * `redis+cluster://[user:password@]host:port,host:port,...` (`rediss+cluster://` for TLS). The
 * nodes are seeds: the client learns the rest of the cluster from any one that answers, so two
 * or three are enough. A URL cannot hold several authorities, hence the list after the scheme.
 */

export interface RedisClusterTarget {
  readonly nodes: readonly { readonly host: string; readonly port: number }[];
  readonly username?: string;
  readonly password?: string;
  readonly tls: boolean;
}

const CLUSTER_SCHEMES = { 'redis+cluster:': false, 'rediss+cluster:': true } as const;

/** True when `url` names a Redis Cluster (whether or not it is well formed). */
export function isRedisClusterUrl(url: string): boolean {
  return Object.keys(CLUSTER_SCHEMES).some((scheme) => url.toLowerCase().startsWith(`${scheme}//`));
}

/** The seeds and credentials of a `redis+cluster://` URL; throws an Error saying what is wrong. */
export function parseRedisClusterUrl(url: string): RedisClusterTarget {
  const match = /^(rediss?\+cluster:)\/\/(?:([^:@/]*)(?::([^@/]*))?@)?([^/?#]+)\/?$/i.exec(url.trim());
  if (!match) throw new Error('a cluster URL looks like redis+cluster://host:port,host:port');
  const [, scheme, user, password, list] = match as unknown as [string, string, string | undefined, string | undefined, string];
  const nodes = list.split(',').map((node) => {
    const colon = node.lastIndexOf(':');
    const host = colon > 0 ? node.slice(0, colon) : '';
    const port = Number(node.slice(colon + 1));
    if (host === '' || !Number.isInteger(port) || port < 1 || port > 65_535) {
      throw new Error(`"${node}" is not host:port`);
    }
    return { host, port };
  });
  const decode = (part: string | undefined) => (part === undefined || part === '' ? undefined : decodeURIComponent(part));
  return {
    nodes,
    username: password === undefined ? undefined : decode(user),
    // `redis+cluster://:secret@...` and `redis+cluster://secret@...` both mean a password only.
    password: password === undefined ? decode(user) : decode(password),
    tls: CLUSTER_SCHEMES[scheme.toLowerCase() as keyof typeof CLUSTER_SCHEMES],
  };
}

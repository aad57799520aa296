/**
 * `REDIS_URL` naming a Redis Cluster (seed list), the prefix rule it brings, and the cluster's
 * topic names: a user's channels and log share one hash tag; one Redis keeps its names.
 */
import { ConfigError, loadConfig } from '../../src/config';
import { createTopics } from '../../src/contracts/topics';
import { isRedisClusterUrl, parseRedisClusterUrl } from '../../src/lib/redis-url';

/** The hash tag Redis Cluster hashes: from the first `{` to the next `}`, when not empty. */
function hashTagOf(key: string): string {
  const open = key.indexOf('{');
  const close = open < 0 ? -1 : key.indexOf('}', open + 1);
  return open >= 0 && close > open + 1 ? key.slice(open + 1, close) : key;
}

it('parses a seed list with credentials and TLS', () => {
  expect(parseRedisClusterUrl('redis+cluster://127.0.0.1:7000,127.0.0.1:7001,redis-2.internal:7002')).toEqual({
    nodes: [
      { host: '127.0.0.1', port: 7000 },
      { host: '127.0.0.1', port: 7001 },
      { host: 'redis-2.internal', port: 7002 },
    ],
    username: undefined,
    password: undefined,
    tls: false,
  });
  expect(parseRedisClusterUrl('rediss+cluster://gw:s%40cret@h1:6379,h2:6379')).toMatchObject({
    username: 'gw',
    password: 's@cret',
    tls: true,
  });
  expect(parseRedisClusterUrl('redis+cluster://:only@h1:6379')).toMatchObject({ username: undefined, password: 'only' });
  expect(isRedisClusterUrl('redis://127.0.0.1:6379')).toBe(false);
  for (const bad of [
    'redis+cluster://',
    'redis+cluster://h1',
    'redis+cluster://h1:0',
    'redis+cluster://h1:7000,:7001',
    'redis+cluster://h1:70000',
  ]) {
    expect(() => parseRedisClusterUrl(bad)).toThrow();
  }
});

it('loadConfig accepts a cluster URL, refuses a malformed one and a prefix with braces, naming the variable', () => {
  const config = loadConfig({ REDIS_URL: 'redis+cluster://127.0.0.1:7000,127.0.0.1:7001' });
  expect(config.redis).toMatchObject({ kind: 'redis', url: 'redis+cluster://127.0.0.1:7000,127.0.0.1:7001' });
  expect(() => loadConfig({ REDIS_URL: 'redis+cluster://127.0.0.1' })).toThrow(ConfigError);
  expect(() => loadConfig({ REDIS_URL: 'redis+cluster://127.0.0.1' })).toThrow(/REDIS_URL/);
  expect(() => loadConfig({ REDIS_URL: 'redis://127.0.0.1:6379', REDIS_TOPIC_PREFIX: 'app{1}:' })).toThrow(/REDIS_TOPIC_PREFIX/);
  expect(loadConfig({ REDIS_URL: 'redis://127.0.0.1:6379' }).redis).toMatchObject({ kind: 'redis', url: 'redis://127.0.0.1:6379' });
});

it("on a cluster a user's channels and log share the user's hash tag, even for ids with braces; one Redis keeps its names", () => {
  const tagged = createTopics('p:', { hashTags: true });
  for (const user of ['alice', 'we{ir}d', '}', '*']) {
    const tags = new Set([tagged.userLog(user), tagged.user('order', user), tagged.user('quota', user)].map(hashTagOf));
    expect(tags.size).toBe(1);
    if (user !== 'alice') expect(hashTagOf(tagged.user('order', user))).not.toBe(hashTagOf(tagged.user('order', 'alice')));
  }
  expect(hashTagOf(tagged.user('order', 'we{ir}d'))).not.toBe(hashTagOf(tagged.user('order', 'we')));
  expect(tagged.user('order', 'alice')).toBe('p:order:user:{alice}');
  expect(tagged.familyOfAllUsers(tagged.allUsers('order'))).toBe('order');
  expect(tagged.familyOfAllUsers(tagged.user('order', 'alice'))).toBeUndefined();
  expect(tagged.allUsersFeeds('order')).toHaveLength(16);
  expect(tagged.allUsersFeeds('order')).toContain(tagged.allUsersFeedOf('order', 'alice'));
  expect(new Set(Array.from({ length: 200 }, (_, i) => tagged.allUsersFeedOf('order', `u${i}`))).size).toBe(16);
  const plain = createTopics('p:');
  expect(plain.user('order', 'alice')).toBe('p:order:user:alice');
  expect(plain.userLog('alice')).toBe('p:log:user:alice');
});

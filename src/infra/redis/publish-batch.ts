/**
 * Publishing on Redis, one event or a batch, in as few round trips as the topology allows
 * (docs/decisions/0601-redis-publish-batches.md). Each event is written exactly as it always was
 * (event-log.ts): appended to its log(s) and published live by one Lua script, so the log's
 * order is the live order. What is new is that one script call carries many events, in order:
 *
 * - one Redis: ONE call per `MAX_EVENTS_PER_CALL` events, whatever their users or audiences
 *   (events without a log are PUBLISHed by the same call, to keep their place in the order);
 * - a Redis Cluster: the batch is split by hash tag (a user, the notifications, the system feed),
 *   each group's events go in one call to the shard owning it, groups concurrently; a user's
 *   every-user feed messages then go in one more call to the feed's shard.
 *
 * A failing event (a Lua error: a key of the wrong type, out of memory) stops its script there:
 * the events before it in the call went out, it and those after it did not, and the call's error
 * names it. Calls follow each other only once the previous one answered, so nothing after a
 * failure is sent (on a cluster: per group).
 */
import { createHash } from 'node:crypto';
import type { PublishItem } from '../../contracts/ports';
import type { Topics } from '../../contracts/topics';
import type { EventLogOptions } from './event-log';
import type { RedisClient } from './redis-connection';

/**
 * Events per script call. Redis runs a script to its end without serving anyone else, so this
 * bounds how long one batch holds up every other command: ~22 µs of Redis CPU per event, about
 * 2 ms for 100 (3 ms of wall time on the loaded 2-core bench machine; test/bench/redis-publish.ts).
 * Larger calls save nothing more (Redis CPU per event is flat from 50 to 500, client CPU from
 * 100), and the bridge's batches are bounded by its prefetch (`AMQP_PREFETCH`, 100 by default):
 * one call per batch. A longer batch costs one more round trip per 100.
 */
export const MAX_EVENTS_PER_CALL = 100;

/** How the script writes an event (its first argument). */
const USER = 'u'; // its user's log (and the every-user log, when that is on), then PUBLISH
const AUDIENCE = 'a'; // an audience's log (`PublishOptions.log`) alone, then PUBLISH
const PLAIN = 'p'; // no log: PUBLISH of the event's JSON, unchanged

/**
 * A failure inside a call names the event: `<redis error> (event <eventId>, <k> of <n> in this
 * call: ...)`. The Lua error may be a string (Redis 7.0) or a table with `err` (7.2 and later).
 */
const DESCRIBE_FAILURE = `
local function failure(err, k, n, eventId)
  local message = type(err) == 'table' and (err.err or err.message) or tostring(err)
  return message .. ' (event ' .. eventId .. ', ' .. k .. ' of ' .. n ..
    ' in this call: the ones before it were published, it and the ones after it were not)'
end
`;

/**
 * One Redis. KEYS[1]: the every-user log; then per event its channel, and its log unless PLAIN.
 * ARGV[1..4]: max age in ms, user log length, every-user log length (0: not written), audience
 * log length; then per event: its mode, eventId, JSON (an object: starts with `{`).
 * Per event, in order, exactly as the one-event script did: XADD with an exact MAXLEN to each of
 * its logs, then PUBLISH of the JSON with both stream ids spliced in front (`logId`,
 * `allLogId`). `XTRIM MINID` (Redis time minus the age bound) and `PEXPIRE` are the same for
 * every event of one call (one server time), so each log gets them once, right after its first
 * XADD of the call: a key written by a call that fails later is already bounded and expiring.
 * Exact trimming (no `~`): at steady state each XADD removes one entry, a constant cost, and the
 * documented bounds are what XLEN shows.
 */
const PUBLISH_MANY_SCRIPT = `${DESCRIBE_FAILURE}
local t = redis.call('TIME')
local maxAge = ARGV[1]
local minid = string.format('%.0f', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - tonumber(maxAge))
local userMax, allMax, audienceMax = ARGV[2], ARGV[3], ARGV[4]
local toAll = tonumber(allMax) > 0
local bounded = {}
local function append(key, maxlen, eventId, json)
  local id = redis.call('XADD', key, 'MAXLEN', maxlen, '*', 'i', eventId, 'e', json)
  if not bounded[key] then
    bounded[key] = true
    redis.call('XTRIM', key, 'MINID', minid)
    redis.call('PEXPIRE', key, maxAge)
  end
  return id
end
local k = 2
local function one(a)
  local mode, eventId, json = ARGV[a], ARGV[a + 1], ARGV[a + 2]
  if mode == '${PLAIN}' then
    redis.call('PUBLISH', KEYS[k], json)
    k = k + 1
    return
  end
  local uid, gid
  if mode == '${USER}' then
    uid = append(KEYS[k + 1], userMax, eventId, json)
    gid = toAll and append(KEYS[1], allMax, eventId, json) or ''
  else
    uid = append(KEYS[k + 1], audienceMax, eventId, json)
    gid = ''
  end
  redis.call('PUBLISH', KEYS[k], '{"logId":"' .. uid .. '","allLogId":"' .. gid .. '",' .. string.sub(json, 2))
  k = k + 2
end
local n = (#ARGV - 4) / 3
for i = 1, n do
  local a = 5 + (i - 1) * 3
  local ok, err = pcall(one, a)
  if not ok then return redis.error_reply(failure(err, i, n, ARGV[a + 1])) end
end
return n
`;

/**
 * A Redis Cluster, one slot (one hash tag). KEYS per event: its channel, and its log unless PLAIN.
 * ARGV[1..3]: max age in ms, user log length, audience log length; then per event: mode, eventId,
 * JSON. As above with SPUBLISH and without the every-user stream (its key would be on another
 * shard). Returns { '' (or the failure that stopped the call), then the log id of each event it
 * published ('' for PLAIN) }: the caller publishes those events' copies on their users'
 * every-user feeds (`liveMessage`), the ones before a failure too.
 */
const CLUSTER_PUBLISH_MANY_SCRIPT = `${DESCRIBE_FAILURE}
local t = redis.call('TIME')
local maxAge = ARGV[1]
local minid = string.format('%.0f', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - tonumber(maxAge))
local userMax, audienceMax = ARGV[2], ARGV[3]
local bounded = {}
local out = { '' }
local k = 1
local function one(a)
  local mode, eventId, json = ARGV[a], ARGV[a + 1], ARGV[a + 2]
  if mode == '${PLAIN}' then
    redis.call('SPUBLISH', KEYS[k], json)
    out[#out + 1] = ''
    k = k + 1
    return
  end
  local key = KEYS[k + 1]
  local uid = redis.call('XADD', key, 'MAXLEN', mode == '${USER}' and userMax or audienceMax, '*', 'i', eventId, 'e', json)
  if not bounded[key] then
    bounded[key] = true
    redis.call('XTRIM', key, 'MINID', minid)
    redis.call('PEXPIRE', key, maxAge)
  end
  redis.call('SPUBLISH', KEYS[k], '{"logId":"' .. uid .. '","allLogId":"",' .. string.sub(json, 2))
  out[#out + 1] = uid
  k = k + 2
end
local n = (#ARGV - 3) / 3
for i = 1, n do
  local a = 4 + (i - 1) * 3
  local ok, err = pcall(one, a)
  if not ok then
    out[1] = failure(err, i, n, ARGV[a + 1])
    return out
  end
end
return out
`;

/** KEYS: feed channels (one slot); ARGV: their messages. SPUBLISH each, in order. */
const FEED_PUBLISH_SCRIPT = `
for i = 1, #KEYS do redis.call('SPUBLISH', KEYS[i], ARGV[i]) end
return #KEYS
`;

/**
 * The live message of a logged event: its JSON with the stream ids spliced in front, exactly as
 * the scripts build it (the every-user feed's copy on a cluster is built here from the id).
 */
export function liveMessage(json: string, logId: string, allLogId: string): string {
  return `{"logId":"${logId}","allLogId":"${allLogId}",${json.slice(1)}`;
}

/**
 * A script run by EVALSHA, loaded by EVAL once Redis says NOSCRIPT. Not ioredis' `defineCommand`:
 * these take a variable number of keys, which ioredis' cluster auto-pipelining would route by
 * the key count (their first argument) instead of their first key.
 */
class Script {
  private readonly sha: string;

  constructor(private readonly lua: string) {
    this.sha = createHash('sha1').update(lua).digest('hex');
  }

  async run(client: RedisClient, keys: readonly string[], argv: readonly string[]): Promise<unknown> {
    const args: (string | number)[] = [this.sha, keys.length].concat(keys, argv);
    try {
      return await client.call('evalsha', args);
    } catch (error) {
      if (!(error instanceof Error) || !error.message.includes('NOSCRIPT')) throw error;
      args[0] = this.lua;
      return client.call('eval', args);
    }
  }
}

const publishMany = new Script(PUBLISH_MANY_SCRIPT);
const clusterPublishMany = new Script(CLUSTER_PUBLISH_MANY_SCRIPT);
const feedPublish = new Script(FEED_PUBLISH_SCRIPT);

/** The part of a key Redis Cluster hashes: its first non-empty `{...}`, else the whole key. */
export function hashTagOf(key: string): string {
  const open = key.indexOf('{');
  if (open >= 0) {
    const close = key.indexOf('}', open + 1);
    if (close > open + 1) return key.slice(open + 1, close);
  }
  return key;
}

export interface BatchPublisherOptions {
  readonly topics: Topics;
  /** Retention; undefined or `maxEvents` 0: nothing is logged, every event is PLAIN. */
  readonly log: EventLogOptions | undefined;
  /** Throws when publishing must stop (the instance's subscriber is away): checked before each call. */
  readonly assertLive: () => void;
}

/** What each script call takes, built per call: keys and arguments in one pass over the events. */
interface Call {
  readonly keys: string[];
  readonly argv: string[];
}

/** The limits as the scripts' leading arguments (strings once, not per call). */
function limitsOf(log: EventLogOptions | undefined) {
  const on = log !== undefined && log.maxEvents > 0;
  return {
    on,
    maxAge: String(on ? log.maxAgeMs : 0),
    user: String(on ? log.maxEvents : 0),
    all: String(on ? log.maxAllEvents : 0),
    // An audience's log is sized like the every-user log (docs/decisions/0101).
    audience: String(on ? Math.max(log.maxEvents, log.maxAllEvents) : 0),
  };
}

/** Adds one event's keys and arguments; returns its JSON. */
function add(call: Call, item: PublishItem, topics: Topics, logging: boolean): string {
  const { topic, event, options } = item;
  const json = JSON.stringify(event);
  const audienceLog = options?.log;
  call.keys.push(topic);
  if (logging && audienceLog !== undefined) {
    call.keys.push(audienceLog);
    call.argv.push(AUDIENCE, event.eventId, json);
  } else if (logging && event.userId !== undefined) {
    call.keys.push(topics.userLog(event.userId));
    call.argv.push(USER, event.eventId, json);
  } else {
    call.argv.push(PLAIN, event.eventId, json);
  }
  return json;
}

/** One Redis: every event of the batch in one script call per `MAX_EVENTS_PER_CALL`, in order. */
export class BatchPublisher {
  private readonly limits: ReturnType<typeof limitsOf>;

  constructor(
    private readonly redis: RedisClient,
    private readonly options: BatchPublisherOptions,
  ) {
    this.limits = limitsOf(options.log);
  }

  async publish(items: readonly PublishItem[]): Promise<void> {
    const { topics, assertLive } = this.options;
    const { limits } = this;
    for (let start = 0; start < items.length; start += MAX_EVENTS_PER_CALL) {
      assertLive();
      const end = Math.min(items.length, start + MAX_EVENTS_PER_CALL);
      const call: Call = { keys: [topics.allUsersLog()], argv: [limits.maxAge, limits.user, limits.all, limits.audience] };
      for (let i = start; i < end; i++) add(call, items[i] as PublishItem, topics, limits.on);
      await publishMany.run(this.redis, call.keys, call.argv);
    }
  }
}

/**
 * A Redis Cluster: the batch split by hash tag (a user's channels and log share one, so do the
 * notifications' and the system feed's), each group in order, groups concurrently. Per group,
 * one script call per `MAX_EVENTS_PER_CALL` of its events on its shard, then one call with their
 * every-user feed messages (a user's feeds share one tag: one shard), then the group's next
 * call. A failure stops its group there; the other groups finish what they started, and the
 * batch rejects with the failure of the group that comes first in the batch.
 */
export class ShardedBatchPublisher {
  private readonly limits: ReturnType<typeof limitsOf>;

  constructor(
    private readonly cluster: RedisClient,
    private readonly options: BatchPublisherOptions,
  ) {
    this.limits = limitsOf(options.log);
  }

  async publish(items: readonly PublishItem[]): Promise<void> {
    if (items.length === 0) return;
    const first = hashTagOf((items[0] as PublishItem).topic);
    let single = true;
    for (let i = 1; i < items.length && single; i++) single = hashTagOf((items[i] as PublishItem).topic) === first;
    if (single) return this.publishGroup(items);
    const groups = new Map<string, PublishItem[]>();
    for (const item of items) {
      const tag = hashTagOf(item.topic);
      const group = groups.get(tag);
      if (group) group.push(item);
      else groups.set(tag, [item]);
    }
    const settled = await Promise.allSettled([...groups.values()].map((group) => this.publishGroup(group)));
    for (const result of settled) if (result.status === 'rejected') throw result.reason;
  }

  private async publishGroup(items: readonly PublishItem[]): Promise<void> {
    const { topics, assertLive } = this.options;
    const { limits } = this;
    for (let start = 0; start < items.length; start += MAX_EVENTS_PER_CALL) {
      assertLive();
      const end = Math.min(items.length, start + MAX_EVENTS_PER_CALL);
      const call: Call = { keys: [], argv: [limits.maxAge, limits.user, limits.audience] };
      const jsons: string[] = [];
      for (let i = start; i < end; i++) jsons.push(add(call, items[i] as PublishItem, topics, limits.on));
      const reply = (await clusterPublishMany.run(this.cluster, call.keys, call.argv)) as string[];
      // The feeds get what the call published, up to a failure; then the failure stops the group.
      await this.publishFeeds(items, start, start + reply.length - 1, jsons, reply);
      const failure = reply[0];
      if (failure) throw new Error(failure);
    }
  }

  /**
   * The every-user feed copies of a group's users' events (not an audience's), in order: not
   * atomic with the user's script (another shard), which they need not be: administrators resume
   * from the durable log by eventId (there is no every-user stream on a cluster).
   */
  private async publishFeeds(items: readonly PublishItem[], start: number, end: number, jsons: string[], reply: string[]) {
    const { topics } = this.options;
    let keys: string[] = [];
    let messages: string[] = [];
    let tag: string | undefined;
    const flush = async () => {
      if (keys.length === 1) await this.cluster.spublish(keys[0] as string, messages[0] as string);
      else if (keys.length > 1) await feedPublish.run(this.cluster, keys, messages);
      keys = [];
      messages = [];
    };
    for (let i = start; i < end; i++) {
      const { event, options } = items[i] as PublishItem;
      if (options?.log !== undefined || event.userId === undefined) continue;
      const feed = topics.allUsersFeedOf(event.family, event.userId);
      // One call per run of one tag (a group is one user: in practice a single run).
      const feedTag = hashTagOf(feed);
      if (tag !== undefined && feedTag !== tag) await flush();
      tag = feedTag;
      const id = reply[1 + i - start] ?? '';
      const json = jsons[i - start] as string;
      keys.push(feed);
      messages.push(id === '' ? json : liveMessage(json, id, ''));
    }
    await flush();
  }
}

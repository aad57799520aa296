/**
 * The retained event log behind resumable subscriptions (`after: ID`), on Redis Streams in the
 * same Redis as the pub/sub fan-out.
 *
 * Why Redis Streams: the log write and the live PUBLISH run in ONE Lua script (publish-batch.ts:
 * one call for a whole batch of events, replacing the single PUBLISH the bridge made before).
 * Redis runs a script atomically, so each event is appended to the log and published live as one
 * step: the log's order is the order every instance received the live messages in, and no event
 * can be in one and not the other.
 * PostgreSQL could not make "appended to the log" and "published live" atomic with each other,
 * and would have put a database write on the delivery path.
 *
 * Layout: one stream per user with all four families (`<prefix>log:user:<userId>`, trimmed to
 * `EVENT_LOG_MAX_EVENTS`) and one for the administrators' every-user subscriptions
 * (`<prefix>log:all`, `EVENT_LOG_MAX_ALL`); both trimmed to `EVENT_LOG_MAX_AGE_SEC` by Redis server
 * time and expiring that long after their last event, so idle users cost nothing. An entry is
 * `i` = eventId, `e` = the event's JSON. The live message is that JSON with the two stream ids
 * spliced in front (`logId`, `allLogId`): a subscriber resuming from the log uses them to drop
 * live messages it already replayed. GraphQL selects schema fields only, so they never reach
 * a client.
 */
import type { RedisClient } from './redis-connection';

/** Retention of the event log. */
export interface EventLogOptions {
  /** Events kept per user (all families); 0 disables the log (plain PUBLISH, `after` always expires). */
  readonly maxEvents: number;
  /** Events kept in the every-user log (administrators without `userId`); 0 disables it. */
  readonly maxAllEvents: number;
  /** Oldest event kept, in milliseconds (Redis server time). */
  readonly maxAgeMs: number;
}

/** The two stream ids the publish script splices into each live message. */
export interface LogPositions {
  /** Position in the user's log. */
  readonly logId?: string;
  /** Position in the every-user log ('' when that log is disabled). */
  readonly allLogId?: string;
}

/**
 * KEYS: a log. ARGV: eventId. Returns false when the log does not hold that eventId; else
 * { id of the newest entry, then id and JSON of every entry after the eventId's OLDEST retained
 * occurrence }. The oldest, because an event redelivered by RabbitMQ (an instance died before its
 * ack) is logged twice: resuming from the later copy could skip what came between, from the
 * earlier one at worst repeats an event the client de-duplicates by eventId. The whole log is
 * scanned (bounded by its exact trimming) inside Redis, and only the replay crosses the network.
 */
const READ_AFTER_SCRIPT = `
local entries = redis.call('XRANGE', KEYS[1], '-', '+')
local n = #entries
local start = nil
for i = 1, n do
  if entries[i][2][2] == ARGV[1] then
    start = i
    break
  end
end
if start == nil then return false end
local out = { entries[n][1] }
for i = start + 1, n do
  out[#out + 1] = entries[i][1]
  out[#out + 1] = entries[i][2][4]
end
return out
`;

interface EventLogCommands {
  cprLogReadAfter(log: string, eventId: string): Promise<string[] | null>;
}

/**
 * The log's read command on `redis` (EVALSHA, falling back to EVAL once per connection); its one
 * key is the log, so it runs on the log's shard on a cluster. Writing is publish-batch.ts.
 */
export function eventLogCommands(redis: RedisClient): EventLogCommands {
  redis.defineCommand('cprLogReadAfter', { numberOfKeys: 1, lua: READ_AFTER_SCRIPT });
  return redis as unknown as EventLogCommands;
}

/** What the log holds after an event: the newest position read, and the entries that followed it. */
export interface LogReplay {
  /** The newest entry of the log when it was read: live messages up to it are in `entries`. */
  readonly last: string;
  readonly entries: readonly { readonly id: string; readonly json: string }[];
}

/** Reads what followed `eventId` in `log`; undefined when the log does not hold it. */
export async function readAfter(
  commands: Pick<EventLogCommands, 'cprLogReadAfter'>,
  log: string,
  eventId: string,
): Promise<LogReplay | undefined> {
  const reply = await commands.cprLogReadAfter(log, eventId);
  if (!reply || reply.length === 0) return undefined;
  const entries: { id: string; json: string }[] = [];
  for (let i = 1; i + 1 < reply.length; i += 2) entries.push({ id: reply[i] as string, json: reply[i + 1] as string });
  return { last: reply[0] as string, entries };
}

/**
 * Orders two stream ids (`<ms>-<seq>`) numerically: as strings, `9-0` would sort after `10-0`.
 * Negative, zero or positive like a comparator.
 */
export function compareStreamIds(a: string, b: string): number {
  const dashA = a.indexOf('-');
  const dashB = b.indexOf('-');
  const msA = Number(dashA < 0 ? a : a.slice(0, dashA));
  const msB = Number(dashB < 0 ? b : b.slice(0, dashB));
  if (msA !== msB) return msA - msB;
  return Number(dashA < 0 ? 0 : a.slice(dashA + 1)) - Number(dashB < 0 ? 0 : b.slice(dashB + 1));
}

/** How often each side of the seam was taken (tests show both happen; operators may watch them). */
export interface SeamCounters {
  /** Subscriptions resumed from the log. */
  resumed: number;
  /** Of those, resumed from the durable log because Redis no longer held their `after`. */
  resumedFromDurable: number;
  /** Retained events handed to resumed subscriptions. */
  replayed: number;
  /** Live messages that arrived while the log was read and were also in it: dropped. */
  duplicatesDropped: number;
  /** Live messages that arrived while the log was read and came after it: delivered after the replay. */
  heldAndReleased: number;
}

/**
 * The seam between replay and live delivery of one resumed subscription. The live subscription
 * is made first; until `open`, its messages are held here. `open` takes the replay (the log read
 * after the subscription was confirmed) and its newest position `last`: the replay goes out,
 * then the held messages past `last`, and from then on every live message past `last`. Whatever
 * was published before the read is in the replay; whatever after it arrives live (the script
 * appends and publishes atomically), so nothing is lost and nothing passes twice. All of it is
 * synchronous pushes into the subscription's one queue: no extra hop on the live path.
 */
export class ResumeGate<E> {
  private held: E[] | undefined = [];
  private last = '';
  /**
   * Set when the replay came from the durable log (PostgreSQL), whose rows carry no stream id:
   * the live messages are then placed by eventId instead. Every event in Redis was committed
   * there before it was published, so the replay (read after the live subscription was
   * confirmed) holds everything published before, and what it lacks arrives live; a live
   * message whose id was replayed is the one duplicate kind, and is dropped. Bounded by the
   * replay, which is bounded by the subscription's buffer.
   */
  private replayedIds: Set<string> | undefined;

  constructor(
    private readonly positionOf: (event: E) => string | undefined,
    private readonly push: (event: E) => void,
    /** Held messages beyond this are not kept: releasing them would overflow the queue anyway. */
    private readonly maxHeld: number,
    private readonly counters: SeamCounters,
  ) {}

  /** A live message. */
  live(event: E): void {
    if (this.held) {
      if (this.held.length <= this.maxHeld) this.held.push(event);
      return;
    }
    if (this.isReplayed(event)) {
      this.counters.duplicatesDropped++;
      return;
    }
    this.push(event);
  }

  /** The replay is ready: `pushReplayed` each of it, then the held live messages past `last`. */
  open(replay: readonly E[], last: string, pushReplayed: (event: E) => void): void {
    const held = this.held ?? [];
    this.held = undefined;
    this.last = last;
    this.counters.resumed++;
    this.counters.replayed += replay.length;
    for (const event of replay) pushReplayed(event);
    for (const event of held) {
      if (this.isReplayed(event)) {
        this.counters.duplicatesDropped++;
      } else {
        this.counters.heldAndReleased++;
        this.push(event);
      }
    }
  }

  /**
   * The replay came from the durable log: `pushReplayed` each of it, then the held live messages
   * whose `idOf` it does not hold, and from then on every live message it does not hold.
   */
  openDurable(replay: readonly E[], idOf: (event: E) => string, pushReplayed: (event: E) => void): void {
    this.replayedIds = new Set(replay.map(idOf));
    this.idOf = idOf;
    this.counters.resumedFromDurable++;
    this.open(replay, '', pushReplayed);
  }

  private idOf: ((event: E) => string) | undefined;

  private isReplayed(event: E): boolean {
    if (this.replayedIds && this.idOf) return this.replayedIds.has(this.idOf(event));
    const position = this.positionOf(event);
    // A message without a position (published by an instance without the log) cannot be placed.
    return position !== undefined && position !== '' && compareStreamIds(position, this.last) <= 0;
  }
}

/**
 * In-process pub/sub for the embedded default: one instance, same topics and semantics as the
 * Redis adapter (glob patterns for administrators), events round-tripped through JSON so
 * subscribers see exactly what they would see from Redis. With `log`, each user's recent events
 * (and every user's) are retained in memory with the same bounds, so `after` works here too;
 * publishing and subscribing are synchronous, so the replay has no seam to guard.
 */
import { HistoryExpiredError } from '../../contracts/errors';
import type { GatewayEvent } from '../../contracts/events';
import type { DependencyStatus, EventPubSub, PublishItem, PublishOptions, ResumeFrom } from '../../contracts/ports';
import { createEventQueue, type EventStream, type QueueOptions } from '../../lib/event-queue';
import type { EventLogOptions } from '../redis/event-log';

interface LogEntry {
  readonly at: number;
  readonly eventId: string;
  readonly wire: string;
}

interface Listener {
  readonly matches: (topic: string) => boolean;
  readonly push: (event: GatewayEvent) => void;
}

function globToRegExp(pattern: string): RegExp {
  const escaped = pattern
    .replace(/[.+^${}()|\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.');
  return new RegExp(`^${escaped}$`);
}

export class MemoryPubSub implements EventPubSub {
  private readonly listeners = new Set<Listener>();
  /** Retained events per user, oldest first (only with `log`). */
  private readonly userLogs = new Map<string, LogEntry[]>();
  private readonly allLog: LogEntry[] = [];
  /** Retained events of audiences (`PublishOptions.log`), by log name. */
  private readonly namedLogs = new Map<string, LogEntry[]>();
  private lastSweep = 0;

  constructor(
    /** Bound and coalescing of each subscription's buffer. */
    private readonly delivery?: QueueOptions<GatewayEvent>,
    /** Retention for resuming with `after`; without it nothing is retained. */
    private readonly log?: EventLogOptions,
  ) {}

  /**
   * Each as `publish`, in order: in memory a publish is synchronous, so the loop is already one
   * step per event with nothing to batch. An event that cannot be published (its JSON throws)
   * rejects the batch there, the events after it untouched.
   */
  async publishMany(items: readonly PublishItem[]): Promise<void> {
    for (const { topic, event, options } of items) await this.publish(topic, event, options);
  }

  async publish(topic: string, event: GatewayEvent, options: PublishOptions = {}): Promise<void> {
    const wire = JSON.stringify(event);
    if (this.log && this.log.maxEvents > 0) {
      if (options.log !== undefined) this.retainNamed(options.log, event, wire, this.log);
      else if (event.userId !== undefined) this.retain(event, event.userId, wire, this.log);
    }
    for (const listener of this.listeners) {
      if (listener.matches(topic)) listener.push(JSON.parse(wire) as GatewayEvent);
    }
  }

  async subscribe(topic: string, options: { pattern?: boolean; resume?: ResumeFrom } = {}): Promise<EventStream<GatewayEvent>> {
    const regexp = options.pattern ? globToRegExp(topic) : undefined;
    const listener: Listener = {
      matches: regexp ? (t) => regexp.test(t) : (t) => t === topic,
      push: (event) => queue.push(event),
    };
    const { resume } = options;
    const replay = resume ? this.replayAfter(resume) : [];
    // Replayed events are exactly what the client missed: never coalesced.
    const replayed = new WeakSet<GatewayEvent>(replay);
    const classify = this.delivery?.classify;
    const delivery =
      resume && this.delivery && classify
        ? { ...this.delivery, classify: (event: GatewayEvent) => (replayed.has(event) ? undefined : classify(event)) }
        : this.delivery;
    const queue = createEventQueue<GatewayEvent>(() => this.listeners.delete(listener), delivery);
    for (const event of replay) queue.push(event);
    this.listeners.add(listener);
    return queue.iterator;
  }

  /** The retained events after `resume.after` that the subscription takes; throws when not retained. */
  private replayAfter(resume: ResumeFrom): GatewayEvent[] {
    const log =
      resume.log !== undefined
        ? this.namedLogs.get(resume.log)
        : resume.userId === null
          ? this.log && this.log.maxAllEvents > 0
            ? this.allLog
            : undefined
          : this.userLogs.get(resume.userId);
    const oldest = Date.now() - (this.log?.maxAgeMs ?? 0);
    // The oldest retained occurrence, as in Redis: a redelivered event is logged twice.
    const start = log?.findIndex((entry) => entry.eventId === resume.after && entry.at >= oldest) ?? -1;
    if (!log || start < 0) throw new HistoryExpiredError();
    const events = log
      .slice(start + 1)
      .map((entry) => JSON.parse(entry.wire) as GatewayEvent)
      .filter((event) => resume.accept(event));
    if (events.length >= (this.delivery?.maxBuffered ?? Number.POSITIVE_INFINITY)) {
      throw new HistoryExpiredError(
        `More events were missed (${events.length}) than one subscription may buffer: query the current state, then subscribe again without \`after\``,
      );
    }
    return events;
  }

  /** An audience's event: its log alone, sized like the every-user log (as in Redis). */
  private retainNamed(name: string, event: GatewayEvent, wire: string, log: EventLogOptions): void {
    const entries = this.namedLogs.get(name) ?? [];
    this.namedLogs.set(name, entries);
    trimmed(entries, { at: Date.now(), eventId: event.eventId, wire }, Math.max(log.maxEvents, log.maxAllEvents), log.maxAgeMs);
  }

  private retain(event: GatewayEvent, userId: string, wire: string, log: EventLogOptions): void {
    const now = Date.now();
    const entry: LogEntry = { at: now, eventId: event.eventId, wire };
    const trim = (entries: LogEntry[], max: number) => trimmed(entries, entry, max, log.maxAgeMs);
    const userLog = this.userLogs.get(userId) ?? [];
    this.userLogs.set(userId, userLog);
    trim(userLog, log.maxEvents);
    if (log.maxAllEvents > 0) trim(this.allLog, log.maxAllEvents);
    // Idle users' logs go, as Redis expires their keys.
    if (now - this.lastSweep > log.maxAgeMs) {
      this.lastSweep = now;
      for (const [userId, entries] of this.userLogs) {
        if ((entries[entries.length - 1]?.at ?? 0) < now - log.maxAgeMs) this.userLogs.delete(userId);
      }
    }
  }

  /** Active subscriptions (tests and metrics). */
  get subscriptionCount(): number {
    return this.listeners.size;
  }

  status(): DependencyStatus {
    return { up: true, detail: 'in-process' };
  }

  async close(): Promise<void> {
    this.listeners.clear();
  }
}

/** Appends `entry`, then drops what exceeds `max` entries or `maxAgeMs`. */
function trimmed(entries: LogEntry[], entry: LogEntry, max: number, maxAgeMs: number): void {
  entries.push(entry);
  let drop = Math.max(0, entries.length - max);
  while (drop < entries.length && (entries[drop] as LogEntry).at < entry.at - maxAgeMs) drop++;
  if (drop > 0) entries.splice(0, drop);
}

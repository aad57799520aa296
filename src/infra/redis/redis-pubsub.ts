/**
 * Redis pub/sub fan-out through graphql-redis-subscriptions. Its `RedisPubSub` already shares one
 * Redis SUBSCRIBE per channel among all local subscribers (reference counted); this adapter
 * gives it the gateway's `EventPubSub` shape: `subscribe` resolves only once Redis confirmed the
 * SUBSCRIBE, and the iterator's `return()` drops the reference. Plain subscriptions share one
 * hub subscription per channel and are dispatched by ./topic-fanout.ts. With an event log (`log`), each
 * publish also appends to the retained logs in the same Lua script, a batch of events in one
 * script call (publish-batch.ts), and `subscribe` can resume after an `eventId` (see event-log.ts).
 */
import { RedisPubSub } from 'graphql-redis-subscriptions';
import type { Logger } from 'pino';
import type { GatewayEvent } from '../../contracts/events';
import { HistoryExpiredError, HistoryUnavailableError } from '../../contracts/errors';
import type { DependencyStatus, DurableEventLog, EventPubSub, PublishItem, PublishOptions, ResumeFrom } from '../../contracts/ports';
import { createTopics, type Topics } from '../../contracts/topics';
import { redisClientName } from './client-name';
import { connectRedis, isCluster, type RedisClient } from './redis-connection';
import { ShardedChannels } from './sharded-channels';
import { createEventQueue, type EventStream, type QueueOptions } from '../../lib/event-queue';
import { isGatewayEvent, TopicFanout, type ChannelHub } from './topic-fanout';
import { eventLogCommands, readAfter, ResumeGate, type EventLogOptions, type LogPositions, type SeamCounters } from './event-log';
import { BatchPublisher, ShardedBatchPublisher } from './publish-batch';

/** A live message: the event with its log positions (the publish script puts them first). */
type LoggedEvent = GatewayEvent & LogPositions;

/**
 * More than the buffer holds would end the subscription as too slow (1013), and the same `after`
 * would do it again: the client must refetch instead.
 */
function refuseOverflow(count: number, maxBuffered: number): void {
  if (count >= maxBuffered) {
    throw new HistoryExpiredError(
      `More events were missed (${count}) than one subscription may buffer: query the current state, then subscribe again without \`after\``,
    );
  }
}

export class RedisEventPubSub implements EventPubSub {
  private readonly publisher: RedisClient;
  private readonly subscriber: RedisClient;
  private readonly pubsub: ChannelHub;
  /** Plain (not resumed) subscriptions: one hub subscription per channel, dispatched locally. */
  private readonly fanout: TopicFanout;
  /** Set on a Redis Cluster: publishes go to sharded channels, without the every-user stream. */
  private readonly cluster: boolean;
  /** Writes events (one or a batch) with their logs: publish-batch.ts. */
  private readonly batch: BatchPublisher | ShardedBatchPublisher;
  /** Events are retained (the log is on). */
  private readonly retaining: boolean;
  private lastError: string | undefined;
  /** Reconnections since start (for metrics): `ready` after the first, per connection. */
  reconnects = 0;
  /** The subscriber is connected and every channel it holds is subscribed again. */
  private subscriberLive = false;
  private subscriberLink: Promise<void> | undefined;

  /** Redis client names of this instance's connections (`CLIENT LIST` shows them to operators). */
  readonly clientNames: { readonly publisher: string; readonly subscriber: string };
  /** How resumed subscriptions crossed from the log to live delivery (tests, operators). */
  readonly seam: SeamCounters = { resumed: 0, resumedFromDurable: 0, replayed: 0, duplicatesDropped: 0, heldAndReleased: 0 };
  private readonly topics: Topics;
  /** Reading the fast log (both shapes); publishing with it goes through `batch`. */
  private readonly log: ReturnType<typeof eventLogCommands> | undefined;

  constructor(
    url: string,
    topicPrefix: string,
    private readonly logger: Logger,
    /** Bound and coalescing of each subscription's buffer. */
    private readonly delivery?: QueueOptions<GatewayEvent>,
    /** Retention for resuming with `after`; without it (or with `maxEvents` 0) nothing is retained. */
    private readonly logOptions?: EventLogOptions,
    /** Where `after` is looked up when Redis no longer holds it (a restart, a failover). */
    private readonly durable?: DurableEventLog,
  ) {
    this.clientNames = { publisher: redisClientName('publisher', topicPrefix), subscriber: redisClientName('subscriber', topicPrefix) };
    const options = {
      // Commands issued while Redis is away wait for the reconnect rather than fail at once;
      // the bridge then requeues what could not be published.
      maxRetriesPerRequest: 3,
      retryStrategy: (attempt: number) => Math.min(100 * 2 ** attempt, 5_000),
    };
    this.publisher = connectRedis(url, { ...options, connectionName: this.clientNames.publisher });
    this.subscriber = connectRedis(url, { ...options, connectionName: this.clientNames.subscriber, shardedSubscribers: true });
    this.topics = createTopics(topicPrefix, { hashTags: isCluster(this.publisher) });
    for (const [role, client] of [
      ['publisher', this.publisher],
      ['subscriber', this.subscriber],
    ] as const) {
      // Without an 'error' listener ioredis' error events crash the process.
      client.on('error', (error: Error) => {
        this.lastError = error.message;
        this.logger.warn({ err: error, role }, 'redis connection error');
      });
      let readyBefore = false;
      client.on('ready', () => {
        this.lastError = undefined;
        if (readyBefore) {
          this.reconnects++;
          this.logger.info({ role }, 'redis reconnected');
        }
        readyBefore = true;
        if (role === 'subscriber') {
          // ioredis re-issues SUBSCRIBE/PSUBSCRIBE for every live channel right after 'ready'; a
          // PING queued behind them answers once Redis has confirmed them all.
          const link = this.subscriber.ping().then(
            () => {
              if (this.subscriberLink === link) this.subscriberLive = true;
            },
            () => undefined,
          );
          this.subscriberLink = link;
        }
      });
      client.on('close', () => {
        if (role === 'subscriber') this.subscriberLive = false;
      });
    }
    const retaining = logOptions !== undefined && logOptions.maxEvents > 0;
    this.retaining = retaining;
    this.log = retaining ? eventLogCommands(this.publisher) : undefined;
    const batchOptions = {
      topics: this.topics,
      log: logOptions,
      assertLive: () => {
        if (!this.subscriberLive) throw new Error('redis subscriber is reconnecting');
      },
    };
    if (isCluster(this.publisher) && isCluster(this.subscriber)) {
      const { topics } = this;
      this.pubsub = new ShardedChannels(
        this.subscriber,
        (topic, pattern) => {
          if (!pattern) return [topic];
          const family = topics.familyOfAllUsers(topic);
          if (family === undefined) throw new Error(`not an every-user pattern: ${topic}`);
          return topics.allUsersFeeds(family);
        },
        logger,
      );
      this.fanout = new TopicFanout(this.pubsub, logger, delivery);
      this.cluster = true;
      this.batch = new ShardedBatchPublisher(this.publisher, batchOptions);
      return;
    }
    this.cluster = false;
    this.batch = new BatchPublisher(this.publisher, batchOptions);
    this.pubsub = new RedisPubSub({ publisher: this.publisher, subscriber: this.subscriber });
    this.fanout = new TopicFanout(this.pubsub, logger, delivery);
    // RedisPubSub.unsubscribe() fires UNSUBSCRIBE/PUNSUBSCRIBE and drops the promises; while Redis
    // is away they reject with nobody listening. Observe them here: the channel is gone either way
    // (ioredis only resubscribes what is still subscribed when it reconnects).
    for (const command of ['unsubscribe', 'punsubscribe'] as const) {
      const original = this.subscriber[command].bind(this.subscriber) as (...args: unknown[]) => Promise<unknown>;
      (this.subscriber as unknown as Record<string, unknown>)[command] = (...args: unknown[]) => {
        const result = original(...args);
        result.catch((error: unknown) => this.logger.debug({ err: error, command }, 'redis unsubscribe failed'));
        return result;
      };
    }
  }

  /**
   * Publishes to every instance. Refused while this instance's own subscriber is away or still
   * resubscribing: its sockets would miss the event, so the bridge requeues it instead and
   * publishes it again once this instance listens.
   */
  async publish(topic: string, event: GatewayEvent, options: PublishOptions = {}): Promise<void> {
    if (!this.subscriberLive) throw new Error('redis subscriber is reconnecting');
    // Nothing to log on one Redis: the plain PUBLISH, without a script.
    if (!this.cluster && (!this.retaining || (options.log === undefined && event.userId === undefined))) {
      await (this.pubsub as unknown as RedisPubSub).publish(topic, event);
      return;
    }
    await this.batch.publish([{ topic, event, options }]);
  }

  /**
   * Each event as `publish` would, in order, in one script call per 100 events on one Redis; on
   * a cluster, per hash tag (user) in order, the tags concurrently (publish-batch.ts).
   */
  async publishMany(items: readonly PublishItem[]): Promise<void> {
    // Refused like `publish` while the subscriber is away: checked before each script call.
    await this.batch.publish(items);
  }

  /**
   * A channel listener: whatever arrives on a channel (another publisher, a non-object) is dropped
   * unless it is a gateway event, and nothing may throw into ioredis' data handler.
   */
  private listener(topic: string, deliver: (event: GatewayEvent) => void): (message: unknown) => void {
    return (message) => {
      if (!isGatewayEvent(message)) {
        this.logger.warn({ topic }, 'redis message that is not a gateway event; dropped');
        return;
      }
      try {
        deliver(message);
      } catch (error) {
        this.logger.warn({ err: error, topic }, 'redis message could not be queued; dropped');
      }
    };
  }

  /** Drops a resumed subscription's hub reference, never synchronously (`TopicFanout.unsubscribe` says why). */
  private unsubscribeLater(id: number, topic: string): void {
    this.fanout.unsubscribe(id, topic);
  }

  async subscribe(topic: string, options: { pattern?: boolean; resume?: ResumeFrom } = {}): Promise<EventStream<GatewayEvent>> {
    if (options.resume) return this.subscribeResumed(topic, options.pattern === true, options.resume);
    return this.fanout.subscribe(topic, options.pattern === true);
  }

  /**
   * `subscribe` with `after`: the live subscription first (its messages held by a `ResumeGate`),
   * then the log read, then replay and release as synchronous pushes into the one queue. The
   * plain `subscribe` above stays exactly as it was: resuming costs nothing to the others.
   */
  private async subscribeResumed(topic: string, pattern: boolean, resume: ResumeFrom): Promise<EventStream<GatewayEvent>> {
    const { log } = this;
    if (!log || (resume.log === undefined && resume.userId === null && !(this.logOptions && this.logOptions.maxAllEvents > 0))) {
      throw new HistoryExpiredError();
    }
    // A cluster has no every-user stream: administrators resume from the durable log alone.
    const fastLog = resume.userId === null && resume.log === undefined && this.cluster ? undefined : log;
    const maxBuffered = this.delivery?.maxBuffered ?? Number.POSITIVE_INFINITY;
    // Replayed events are exactly what the client missed: never coalesced (a WeakSet, so the
    // plain subscriptions' options and the queue's hot path stay untouched).
    const replayed = new WeakSet<GatewayEvent>();
    const classify = this.delivery?.classify;
    const delivery: QueueOptions<GatewayEvent> | undefined =
      this.delivery && classify
        ? { ...this.delivery, classify: (event) => (replayed.has(event) ? undefined : classify(event)) }
        : this.delivery;
    let subscriptionId: number | undefined;
    let released = false;
    const unsubscribe = (id: number) => this.unsubscribeLater(id, topic);
    const queue = createEventQueue<GatewayEvent>(() => {
      released = true;
      if (subscriptionId !== undefined) unsubscribe(subscriptionId);
    }, delivery);
    const push = (event: GatewayEvent) => {
      try {
        queue.push(event);
      } catch (error) {
        this.logger.warn({ err: error, topic }, 'redis message could not be queued; dropped');
      }
    };
    const byUser = resume.log === undefined;
    const position: (event: LoggedEvent) => string | undefined =
      byUser && resume.userId === null ? (event) => event.allLogId : (event) => event.logId;
    const gate = new ResumeGate<LoggedEvent>(position, push, maxBuffered, this.seam);
    try {
      subscriptionId = await this.pubsub.subscribe(
        topic,
        this.listener(topic, (event) => gate.live(event)),
        { pattern },
      );
      if (released) {
        unsubscribe(subscriptionId);
        return queue.iterator;
      }
      const logKey = resume.log ?? (resume.userId === null ? this.topics.allUsersLog() : this.topics.userLog(resume.userId));
      const found = fastLog ? await readAfter(fastLog, logKey, resume.after) : undefined;
      const takes = (event: unknown): event is GatewayEvent =>
        isGatewayEvent(event) && (!byUser || resume.userId === null || event.userId === resume.userId) && resume.accept(event);
      const pushReplayed = (event: GatewayEvent) => {
        replayed.add(event);
        push(event);
      };
      if (found) {
        const events: GatewayEvent[] = [];
        for (const entry of found.entries) {
          let event: unknown;
          try {
            event = JSON.parse(entry.json);
          } catch {
            continue;
          }
          if (takes(event)) events.push(event);
        }
        refuseOverflow(events.length, maxBuffered);
        gate.open(events, found.last, pushReplayed);
      } else {
        // Redis does not hold `after`: lost with a restart or failover, or truly not retained.
        // Only the durable log can tell, and without it there is no continuity to prove.
        // The durable log holds users' events, never an audience's (notifications, system).
        if (resume.log !== undefined) throw new HistoryExpiredError();
        const durable = await this.readDurable(resume);
        const events = durable.filter(takes);
        refuseOverflow(events.length, maxBuffered);
        gate.openDurable(events, (event) => event.eventId, pushReplayed);
      }
    } catch (error) {
      await queue.iterator.return?.();
      throw error;
    }
    return queue.iterator;
  }

  /** The durable log's replay after `resume.after`; HISTORY_EXPIRED when not retained, HISTORY_UNAVAILABLE when unreadable. */
  private async readDurable(resume: ResumeFrom): Promise<GatewayEvent[]> {
    if (!this.durable) throw new HistoryExpiredError();
    let events: GatewayEvent[] | undefined;
    try {
      events = await this.durable.readAfter(resume.userId, resume.after);
    } catch (error) {
      this.logger.warn({ err: error, userId: resume.userId }, 'durable event log unreadable: resume refused');
      throw new HistoryUnavailableError();
    }
    if (!events) throw new HistoryExpiredError();
    return events;
  }

  status(): DependencyStatus {
    const up = this.publisher.status === 'ready' && this.subscriber.status === 'ready' && this.subscriberLive;
    return up ? { up } : { up, detail: this.lastError ?? `publisher ${this.publisher.status}, subscriber ${this.subscriber.status}` };
  }

  /**
   * Resolves once both connections answered (start-up); rejects when Redis is not reachable
   * within ioredis' retries. The caller may go on: ioredis keeps reconnecting by itself.
   */
  async ready(): Promise<void> {
    await Promise.all([this.publisher.ping(), this.subscriber.ping()]);
    await this.subscriberLink;
  }

  async close(): Promise<void> {
    await Promise.allSettled([this.publisher.quit(), this.subscriber.quit()]);
  }
}

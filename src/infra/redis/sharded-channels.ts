/**
 * Sharded pub/sub (`SSUBSCRIBE`) on a Redis Cluster, with the same shape as
 * graphql-redis-subscriptions' `RedisPubSub` (`subscribe` resolves to an id once Redis confirmed,
 * `unsubscribe(id)`), which cannot do sharded pub/sub (docs/decisions/0301): each channel is
 * subscribed once per instance on the node that owns its slot, and shared by every local
 * subscriber (reference counted). ioredis' sharded subscribers (`shardedSubscribers: true`) keep
 * one connection per master and resubscribe after a reconnect or a slot move.
 *
 * Sharded pub/sub has no patterns: a pattern subscription (administrators, every user) is
 * expanded by `expand` into the feed channels that together carry it (contracts/topics.ts).
 */
import type { Cluster } from 'ioredis';
import type { Logger } from 'pino';

type OnMessage = (message: unknown) => void;

interface Channel {
  readonly ids: Set<number>;
  /** The SSUBSCRIBE of this channel, confirmed or not yet. */
  readonly subscribed: Promise<unknown>;
}

export class ShardedChannels {
  private nextId = 0;
  private readonly listeners = new Map<number, { readonly channels: readonly string[]; readonly onMessage: OnMessage }>();
  private readonly channels = new Map<string, Channel>();

  constructor(
    private readonly subscriber: Cluster,
    /** The channels a topic means: itself, or for a pattern the feeds that carry it. */
    private readonly expand: (topic: string, pattern: boolean) => readonly string[],
    private readonly logger: Logger,
  ) {
    subscriber.on('smessage', (channel: string, message: string) => this.dispatch(channel, message));
  }

  async subscribe(topic: string, onMessage: OnMessage, options: { pattern?: boolean } = {}): Promise<number> {
    const id = ++this.nextId;
    const channels = this.expand(topic, options.pattern === true);
    this.listeners.set(id, { channels, onMessage });
    const waits: Promise<unknown>[] = [];
    for (const name of channels) {
      let channel = this.channels.get(name);
      if (!channel) {
        // One SSUBSCRIBE per channel: channels of different slots cannot share one command.
        channel = { ids: new Set(), subscribed: this.subscriber.ssubscribe(name) };
        this.channels.set(name, channel);
      }
      channel.ids.add(id);
      waits.push(channel.subscribed);
    }
    try {
      await Promise.all(waits);
    } catch (error) {
      this.unsubscribe(id);
      throw error;
    }
    return id;
  }

  unsubscribe(id: number): void {
    const listener = this.listeners.get(id);
    if (!listener) return;
    this.listeners.delete(id);
    for (const name of listener.channels) {
      const channel = this.channels.get(name);
      if (!channel) continue;
      channel.ids.delete(id);
      if (channel.ids.size > 0) continue;
      this.channels.delete(name);
      // Rejected while Redis is away: the channel is gone either way (not resubscribed).
      this.subscriber
        .sunsubscribe(name)
        .catch((error: unknown) => this.logger.debug({ err: error, channel: name }, 'redis sunsubscribe failed'));
    }
  }

  /** Subscribed channels (tests, operators). */
  get channelCount(): number {
    return this.channels.size;
  }

  private dispatch(name: string, raw: string): void {
    const channel = this.channels.get(name);
    if (!channel) return;
    let message: unknown;
    try {
      message = JSON.parse(raw);
    } catch {
      this.logger.warn({ channel: name }, 'redis message that is not JSON; dropped');
      return;
    }
    // A copy of the ids: a listener may unsubscribe (its socket closed) while we deliver.
    for (const id of [...channel.ids]) this.listeners.get(id)?.onMessage(message);
  }
}

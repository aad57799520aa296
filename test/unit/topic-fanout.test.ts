/**
 * The Redis fan-out's local dispatch (src/infra/redis/topic-fanout.ts) over a fake hub: one hub
 * subscription per channel whatever the subscribers, `subscribe` resolving only once the hub
 * confirmed, the last release unsubscribing (never synchronously), a failed SUBSCRIBE refusing every
 * waiting subscriber, noise dropped, and a release inside the dispatch loop skipping nobody else.
 */
import pino from 'pino';
import type { GatewayEvent } from '../../src/contracts/events';
import type { EventStream } from '../../src/lib/event-queue';
import { TopicFanout, type ChannelHub } from '../../src/infra/redis/topic-fanout';
import { deferred, type Deferred } from '../helpers/wait';

class FakeHub implements ChannelHub {
  readonly subscriptions = new Map<number, { topic: string; pattern: boolean; onMessage: (message: unknown) => void }>();
  readonly confirmations: Deferred<void>[] = [];
  readonly unsubscribed: number[] = [];
  private nextId = 0;

  async subscribe(topic: string, onMessage: (message: unknown) => void, options: { pattern: boolean }): Promise<number> {
    const id = this.nextId++;
    const confirmed = deferred<void>();
    this.confirmations.push(confirmed);
    await confirmed.promise;
    this.subscriptions.set(id, { topic, pattern: options.pattern, onMessage });
    return id;
  }

  unsubscribe(id: number): void {
    this.unsubscribed.push(id);
    this.subscriptions.delete(id);
  }

  publish(topic: string, message: unknown): void {
    for (const subscription of this.subscriptions.values()) if (subscription.topic === topic) subscription.onMessage(message);
  }
}

const event = (eventId: string): GatewayEvent => ({
  family: 'order',
  type: 'order.completed',
  eventId,
  userId: 'u',
  occurredAt: new Date().toISOString(),
  orderId: eventId,
});

const collect = (stream: EventStream<GatewayEvent>, onOffer?: (e: GatewayEvent) => void) => {
  const got: string[] = [];
  stream.attach({
    offer: (e) => {
      got.push(e.eventId);
      onOffer?.(e);
      return true;
    },
    ended: () => undefined,
  });
  return got;
};

const microtasks = () => new Promise((resolve) => setImmediate(resolve));

describe('topic fan-out', () => {
  it('shares one hub subscription per channel and resolves once it is confirmed', async () => {
    const hub = new FakeHub();
    const fanout = new TopicFanout(hub, pino({ level: 'silent' }));
    let resolved = 0;
    const a = fanout.subscribe('t', false).then((s) => (resolved++, s));
    const b = fanout.subscribe('t', false).then((s) => (resolved++, s));
    await microtasks();
    expect(hub.confirmations).toHaveLength(1);
    expect(resolved).toBe(0);
    hub.confirmations[0]!.resolve();
    const [first, second] = await Promise.all([a, b]);
    const third = await fanout.subscribe('t', false); // already confirmed: at once
    expect(hub.confirmations).toHaveLength(1);
    // Another topic, or the same name as a pattern, is a channel of its own.
    const pattern = fanout.subscribe('t', true);
    await microtasks();
    expect(hub.confirmations).toHaveLength(2);
    hub.confirmations[1]!.resolve();
    await pattern;
    const got = [first, second, third].map((s) => collect(s));
    hub.publish('t', event('e1'));
    hub.publish('t', { not: 'an event' });
    hub.publish('t', event('e2'));
    expect(got).toEqual([
      ['e1', 'e2'],
      ['e1', 'e2'],
      ['e1', 'e2'],
    ]);
    expect(fanout.channelCount).toBe(2);
  });

  it('unsubscribes after the last release, not synchronously, and a new subscriber starts a new channel', async () => {
    const hub = new FakeHub();
    const fanout = new TopicFanout(hub, pino({ level: 'silent' }));
    const a = fanout.subscribe('t', false);
    await microtasks();
    hub.confirmations[0]!.resolve();
    const first = await a;
    const second = await fanout.subscribe('t', false);
    await first.return?.();
    await microtasks();
    expect(hub.unsubscribed).toEqual([]);
    void second.return?.();
    expect(hub.unsubscribed).toEqual([]); // deferred: a release may happen inside the hub's own loop
    await microtasks();
    expect(hub.unsubscribed).toEqual([0]);
    expect(fanout.channelCount).toBe(0);
    const again = fanout.subscribe('t', false);
    await microtasks();
    expect(hub.confirmations).toHaveLength(2);
    hub.confirmations[1]!.resolve();
    await again;
  });

  it('unsubscribes the channel of a lone subscriber that ends as soon as it has its stream', async () => {
    const hub = new FakeHub();
    const fanout = new TopicFanout(hub, pino({ level: 'silent' }));
    const pending = fanout.subscribe('t', false);
    await microtasks();
    hub.confirmations[0]!.resolve();
    const stream = await pending;
    await stream.return?.();
    await microtasks();
    expect(hub.unsubscribed).toEqual([0]);
  });

  it('refuses every waiting subscriber when SUBSCRIBE fails, and the next one tries again', async () => {
    const hub = new FakeHub();
    const fanout = new TopicFanout(hub, pino({ level: 'silent' }));
    const a = fanout.subscribe('t', false);
    const b = fanout.subscribe('t', false);
    await microtasks();
    hub.confirmations[0]!.reject(new Error('redis away'));
    await expect(a).rejects.toThrow('redis away');
    await expect(b).rejects.toThrow('redis away');
    expect(fanout.channelCount).toBe(0);
    const c = fanout.subscribe('t', false);
    await microtasks();
    hub.confirmations[1]!.resolve();
    await expect(c).resolves.toBeDefined();
  });

  it('a release inside the dispatch loop skips nobody else', async () => {
    const hub = new FakeHub();
    const fanout = new TopicFanout(hub, pino({ level: 'silent' }));
    const pending = [0, 1, 2].map(() => fanout.subscribe('t', false));
    await microtasks();
    hub.confirmations[0]!.resolve();
    const [a, b, c] = await Promise.all(pending);
    const got = [collect(a!, () => void b!.return?.()), collect(b!), collect(c!)];
    hub.publish('t', event('e1'));
    hub.publish('t', event('e2'));
    expect(got).toEqual([['e1', 'e2'], [], ['e1', 'e2']]);
  });
});

/**
 * In-process pub/sub for the embedded default: one instance, same topics and semantics as the
 * Redis adapter (glob patterns for administrators), events round-tripped through JSON so
 * subscribers see exactly what they would see from Redis.
 */
import type { GatewayEvent } from '../../contracts/events';
import type { DependencyStatus, EventPubSub } from '../../contracts/ports';
import { createEventQueue, type EventStream, type QueueOptions } from '../../lib/event-queue';

interface Listener {
  readonly matches: (topic: string) => boolean;
  readonly push: (event: GatewayEvent) => void;
}

function globToRegExp(pattern: string): RegExp {
  const escaped = pattern.replace(/[.+^${}()|\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${escaped}$`);
}

export class MemoryPubSub implements EventPubSub {
  private readonly listeners = new Set<Listener>();

  /** `delivery`: bound and coalescing of each subscription's buffer. */
  constructor(private readonly delivery?: QueueOptions<GatewayEvent>) {}

  async publish(topic: string, event: GatewayEvent): Promise<void> {
    const wire = JSON.stringify(event);
    for (const listener of this.listeners) {
      if (listener.matches(topic)) listener.push(JSON.parse(wire) as GatewayEvent);
    }
  }

  async subscribe(topic: string, options: { pattern?: boolean } = {}): Promise<EventStream<GatewayEvent>> {
    const regexp = options.pattern ? globToRegExp(topic) : undefined;
    const listener: Listener = {
      matches: regexp ? (t) => regexp.test(t) : (t) => t === topic,
      push: (event) => queue.push(event),
    };
    const queue = createEventQueue<GatewayEvent>(() => this.listeners.delete(listener), this.delivery);
    this.listeners.add(listener);
    return queue.iterator;
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

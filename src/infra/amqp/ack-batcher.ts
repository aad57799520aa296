/**
 * Acknowledgements of one channel, gathered per turn of the event loop: the longest settled run
 * from the oldest unsettled delivery goes as one `basic.ack` with `multiple` (`ack(m, true)`),
 * and any message settled past a gap (an older one still being handled or retried) is acknowledged
 * on its own, so a retried message never holds the others' acks (the consumer's prefetch window
 * would fill with them and stall its partition).
 *
 * Delivery tags grow by one per delivery on a channel, in delivery order; the batcher is made
 * per channel and dropped with it (a new channel starts its tags again, and unsettled messages of
 * a lost channel are redelivered by the broker).
 */
import type { Channel, Message } from 'amqplib';

export class AckBatcher {
  /** Every tag the channel delivered and the walk has not passed yet, in delivery order. */
  private readonly outstanding: number[] = [];
  private head = 0;
  /** Handled, to be acknowledged at the next flush. */
  private readonly settled = new Set<number>();
  /** Nacked, or acknowledged alone past a gap: skipped when the walk reaches them. */
  private readonly forgotten = new Set<number>();
  private scheduled = false;
  /** Frames sent (for tests and the bench): `basic.ack` calls, and how many messages they covered. */
  readonly counts = { frames: 0, messages: 0 };

  constructor(private readonly channel: Channel) {}

  /** Call for every message the channel delivers, in delivery order. */
  delivered(message: Message): void {
    this.outstanding.push(message.fields.deliveryTag);
  }

  /** The message was handled: it is acknowledged at the end of this turn. */
  ack(message: Message): void {
    this.settled.add(message.fields.deliveryTag);
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      try {
        this.flush();
      } catch {
        // The channel closed meanwhile: its unacknowledged messages go back to the queue.
      }
    });
  }

  /** The message was settled another way (nacked): no ack will cover it. */
  forget(message: Message): void {
    this.forgotten.add(message.fields.deliveryTag);
  }

  /** Acknowledges what was settled; a channel that closed meanwhile throws, and the broker redelivers. */
  flush(): void {
    this.scheduled = false;
    if (this.settled.size === 0) return;
    const { outstanding, settled, forgotten } = this;
    let last: number | undefined;
    let covered = 0;
    while (this.head < outstanding.length) {
      const tag = outstanding[this.head] as number;
      // Nacked, or acknowledged alone before: no longer unacknowledged at the broker, so a
      // `multiple` ack reaching past it does not touch it.
      if (forgotten.delete(tag)) {
        this.head++;
        continue;
      }
      if (!settled.delete(tag)) break;
      last = tag;
      covered++;
      this.head++;
    }
    try {
      if (last !== undefined) this.send(last, true, covered);
      // Past the gap: one by one (still in this turn), and kept out of the next multiple ack's way.
      for (const tag of settled) {
        this.send(tag, false, 1);
        forgotten.add(tag);
      }
    } finally {
      settled.clear();
      this.compact();
    }
  }

  private send(deliveryTag: number, multiple: boolean, messages: number): void {
    // amqplib only reads `fields.deliveryTag` of the message it acknowledges.
    this.channel.ack({ fields: { deliveryTag } } as Message, multiple);
    this.counts.frames++;
    this.counts.messages += messages;
  }

  private compact(): void {
    if (this.head > 1024 && this.head * 2 > this.outstanding.length) {
      this.outstanding.splice(0, this.head);
      this.head = 0;
    }
  }
}

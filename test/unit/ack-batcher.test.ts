/**
 * Acknowledgements per channel and turn (issue 16): the settled run from the oldest delivery in
 * one `multiple` ack, anything settled past a gap alone, and never an ack that covers a message
 * still being handled.
 */
import type { Channel, Message } from 'amqplib';
import { AckBatcher } from '../../src/infra/amqp/ack-batcher';

/** A channel that records the acks it is asked to send (the broker's side is in the integration tests). */
function recordingChannel() {
  const acks: [number, boolean][] = [];
  const channel = { ack: (message: Message, multiple?: boolean) => acks.push([message.fields.deliveryTag, multiple === true]) };
  return { acks, channel: channel as unknown as Channel };
}

const message = (deliveryTag: number) => ({ fields: { deliveryTag } }) as Message;
const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

/** What the broker would consider acknowledged after `acks`, of `delivered` tags. */
function acknowledged(acks: readonly [number, boolean][], delivered: readonly number[]): number[] {
  const done = new Set<number>();
  for (const [tag, multiple] of acks) {
    if (multiple) for (const t of delivered) if (t <= tag) done.add(t);
    done.add(tag);
  }
  return [...done].sort((a, b) => a - b);
}

it('acknowledges a settled run with one multiple ack at the end of the turn', async () => {
  const { acks, channel } = recordingChannel();
  const batcher = new AckBatcher(channel);
  for (let tag = 1; tag <= 5; tag++) batcher.delivered(message(tag));
  for (let tag = 1; tag <= 5; tag++) batcher.ack(message(tag));
  expect(acks).toEqual([]);
  await turn();
  expect(acks).toEqual([[5, true]]);
  expect(batcher.counts).toEqual({ frames: 1, messages: 5 });
});

it('never covers a message still in hand; what was settled past it goes alone, then the run resumes', async () => {
  const { acks, channel } = recordingChannel();
  const batcher = new AckBatcher(channel);
  const delivered = [1, 2, 3, 4, 5, 6];
  for (const tag of delivered) batcher.delivered(message(tag));
  for (const tag of [1, 2, 4, 5]) batcher.ack(message(tag));
  await turn();
  expect(acks).toEqual([
    [2, true],
    [4, false],
    [5, false],
  ]);
  expect(acknowledged(acks, delivered)).toEqual([1, 2, 4, 5]);
  batcher.ack(message(3));
  batcher.ack(message(6));
  await turn();
  // 3 closes the gap: one multiple ack up to 6 (4 and 5 are no longer outstanding at the broker).
  expect(acks.slice(3)).toEqual([[6, true]]);
  expect(acknowledged(acks, delivered)).toEqual(delivered);
});

it('passes over a nacked message and keeps acknowledging after it', async () => {
  const { acks, channel } = recordingChannel();
  const batcher = new AckBatcher(channel);
  for (const tag of [1, 2, 3]) batcher.delivered(message(tag));
  batcher.forget(message(2));
  batcher.ack(message(1));
  batcher.ack(message(3));
  await turn();
  expect(acks).toEqual([[3, true]]);
});

it('a channel that closed meanwhile does not throw out of the turn', async () => {
  const channel = {
    ack: () => {
      throw new Error('Channel closed');
    },
  } as unknown as Channel;
  const batcher = new AckBatcher(channel);
  batcher.delivered(message(1));
  batcher.ack(message(1));
  await turn();
  expect(batcher.counts.frames).toBe(0);
});

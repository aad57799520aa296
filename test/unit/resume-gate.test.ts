/**
 * The seam of a resumed subscription, with every interleaving spelled out: live messages held
 * while the log is read, dropped when the read already had them, released when they came after
 * it, and stream ids ordered as numbers.
 */
import { compareStreamIds, ResumeGate, type SeamCounters } from '../../src/infra/redis/event-log';

interface Msg {
  readonly id: string;
  readonly logId?: string;
}

function gate() {
  const out: string[] = [];
  const counters: SeamCounters = { resumed: 0, resumedFromDurable: 0, replayed: 0, duplicatesDropped: 0, heldAndReleased: 0 };
  const g = new ResumeGate<Msg>(
    (m) => m.logId,
    (m) => out.push(`live:${m.id}`),
    10,
    counters,
  );
  return { g, out, counters, replay: (m: Msg) => out.push(`replay:${m.id}`) };
}

it('orders stream ids numerically, milliseconds then sequence', () => {
  expect(compareStreamIds('9-0', '10-0')).toBeLessThan(0);
  expect(compareStreamIds('1700000000000-2', '1700000000000-10')).toBeLessThan(0);
  expect(compareStreamIds('1700000000001-0', '1700000000000-99')).toBeGreaterThan(0);
  expect(compareStreamIds('5-5', '5-5')).toBe(0);
});

it('holds live messages until the replay, drops those the replay had, then releases the rest in order', () => {
  const { g, out, counters, replay } = gate();
  // Arrived while the log was read: 3-0 was also in the read; 5-0 and 6-0 came after it.
  g.live({ id: 'c', logId: '3-0' });
  g.live({ id: 'e', logId: '5-0' });
  g.live({ id: 'f', logId: '6-0' });
  expect(out).toEqual([]);
  g.open(
    [
      { id: 'b', logId: '2-0' },
      { id: 'c', logId: '3-0' },
      { id: 'd', logId: '4-0' },
    ],
    '4-0',
    replay,
  );
  g.live({ id: 'd', logId: '4-0' }); // a late copy of what was replayed
  g.live({ id: 'g', logId: '7-0' });
  expect(out).toEqual(['replay:b', 'replay:c', 'replay:d', 'live:e', 'live:f', 'live:g']);
  expect(counters).toEqual({ resumed: 1, resumedFromDurable: 0, replayed: 3, duplicatesDropped: 2, heldAndReleased: 2 });
});

it('an empty replay (nothing missed) passes everything past the position it read', () => {
  const { g, out, replay } = gate();
  g.live({ id: 'x', logId: '10-0' });
  g.open([], '10-0', replay);
  g.live({ id: 'y', logId: '10-1' });
  g.live({ id: 'z' }); // no position (an instance without the log): cannot be placed, passed on
  expect(out).toEqual(['live:y', 'live:z']);
});

it('holds at most one more than the buffer takes (releasing them overflows the queue anyway)', () => {
  const { g, out, replay } = gate();
  for (let n = 1; n <= 50; n++) g.live({ id: `m${n}`, logId: `${n}-0` });
  g.open([], '0-0', replay);
  expect(out).toHaveLength(11);
});

it('after a replay from the durable log, places live messages by eventId: replayed ones dropped, held and later ones in order', () => {
  const { g, out, counters, replay } = gate();
  // Stream ids of a Redis restarted since: they say nothing about the durable replay.
  g.live({ id: 'c', logId: '1-0' });
  g.live({ id: 'e', logId: '2-0' });
  g.openDurable([{ id: 'b' }, { id: 'c' }, { id: 'd' }], (m) => m.id, replay);
  g.live({ id: 'd', logId: '3-0' }); // committed before the read, published after it
  g.live({ id: 'f', logId: '4-0' });
  expect(out).toEqual(['replay:b', 'replay:c', 'replay:d', 'live:e', 'live:f']);
  expect(counters).toEqual({ resumed: 1, resumedFromDurable: 1, replayed: 3, duplicatesDropped: 2, heldAndReleased: 1 });
});

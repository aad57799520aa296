import { createEventQueue, SlowConsumerError, type QueueOptions } from '../../src/lib/event-queue';
import { coalescingKey, combine, supersedes } from '../../src/contracts/coalescing';
import type { GatewayEvent, QuotaEventKind } from '../../src/contracts/events';
import { deferred } from '../helpers/wait';

interface Ev {
  id: number;
  entity?: string;
  state?: boolean;
}

const classify = (e: Ev) => (e.entity === undefined ? undefined : { entity: e.entity, coalesce: e.state === true });

function queue(options: Partial<QueueOptions<Ev>> = {}) {
  const released = { count: 0 };
  const counts = { coalesced: 0, overflowed: 0 };
  const q = createEventQueue<Ev>(() => released.count++, {
    maxBuffered: 100,
    coalesceMs: 50,
    classify,
    onCoalesced: () => counts.coalesced++,
    onOverflow: () => counts.overflowed++,
    ...options,
  });
  const take = async (n: number) => {
    const out: number[] = [];
    for (let i = 0; i < n; i++) {
      const r = await q.iterator.next();
      if (r.done) break;
      out.push(r.value.id);
    }
    return out;
  };
  return { push: (e: Ev) => q.push(e), iterator: q.iterator, released, counts, take };
}

describe('event queue: bound', () => {
  it('is unbounded without options, in order, and releases once on return()', async () => {
    let released = 0;
    const q = createEventQueue<number>(() => released++);
    for (let i = 0; i < 5_000; i++) q.push(i);
    for (let i = 0; i < 5_000; i++) expect((await q.iterator.next()).value).toBe(i);
    await q.iterator.return!();
    await q.iterator.return!();
    expect(released).toBe(1);
    expect((await q.iterator.next()).done).toBe(true);
  });

  it('ends the stream on overflow: buffer dropped, released, listener told, next() rejects', async () => {
    const q = queue({ maxBuffered: 3 });
    const told = deferred<void>();
    q.iterator.onOverflow(() => told.resolve());
    for (let i = 0; i < 4; i++) q.push({ id: i });
    await told.promise;
    expect(q.released.count).toBe(1);
    expect(q.counts.overflowed).toBe(1);
    await expect(q.iterator.next()).rejects.toBeInstanceOf(SlowConsumerError);
    q.push({ id: 99 }); // ignored, no throw
    // A listener registered after the fact is told at once.
    let late = false;
    q.iterator.onOverflow(() => (late = true));
    expect(late).toBe(true);
  });

  it('never overflows a consumer that keeps up', async () => {
    const q = queue({ maxBuffered: 2 });
    for (let i = 0; i < 1_000; i++) {
      const next = q.iterator.next();
      q.push({ id: i });
      const result = await next;
      expect(result.done ? undefined : result.value.id).toBe(i);
    }
    expect(q.counts.overflowed).toBe(0);
  });
});

describe('event queue: coalescing', () => {
  it('delivers the first state event at once and only the latest of a burst after the window', async () => {
    const q = queue({ coalesceMs: 30 });
    q.push({ id: 1, entity: 'a', state: true });
    expect(await q.take(1)).toEqual([1]); // no added latency when quiet
    for (let i = 2; i <= 500; i++) q.push({ id: i, entity: 'a', state: true });
    expect(await q.take(1)).toEqual([500]); // the trailing edge carries the final state
    expect(q.counts.coalesced).toBe(498);
  });

  it('replaces a state event still waiting in the buffer, in place', async () => {
    const q = queue();
    q.push({ id: 1, entity: 'a', state: true });
    q.push({ id: 2 });
    q.push({ id: 3, entity: 'a', state: true });
    expect(await q.take(2)).toEqual([3, 2]);
    expect(q.counts.coalesced).toBe(1);
  });

  it('keeps entities apart and never coalesces non-state events', async () => {
    const q = queue();
    q.push({ id: 1, entity: 'a', state: true });
    q.push({ id: 2, entity: 'b', state: true });
    q.push({ id: 3, entity: 'a', state: false });
    q.push({ id: 4, entity: 'a', state: false });
    q.push({ id: 5, entity: 'b', state: true });
    expect(await q.take(4)).toEqual([1, 5, 3, 4]);
  });

  it('keeps order per entity: a non-state event releases a held state event first', async () => {
    const q = queue({ coalesceMs: 30 });
    q.push({ id: 1, entity: 'a', state: true });
    expect(await q.take(1)).toEqual([1]);
    q.push({ id: 2, entity: 'a', state: true }); // held (window still open)
    q.push({ id: 3, entity: 'a', state: true }); // replaces 2
    q.push({ id: 4, entity: 'a', state: false }); // releases 3 first
    q.push({ id: 5, entity: 'a', state: true }); // must not jump ahead of 4 (held for its window)
    expect(await q.take(3)).toEqual([3, 4, 5]);
  });

  it('counts held events against the bound', async () => {
    const q = queue({ maxBuffered: 3, coalesceMs: 60_000 });
    for (const entity of ['a', 'b', 'c']) {
      q.push({ id: 0, entity, state: true });
      await q.take(1);
    }
    q.push({ id: 1, entity: 'a', state: true });
    q.push({ id: 2, entity: 'b', state: true });
    q.push({ id: 3, entity: 'c', state: true });
    expect(q.counts.overflowed).toBe(0);
    q.push({ id: 4, entity: 'd', state: false });
    expect(q.counts.overflowed).toBe(1);
    expect(q.released.count).toBe(1); // the held timers went with the stream
  });

  it("keeps the latest by the event's own time, not by arrival, when told how to compare", async () => {
    const q = queue({
      coalesceMs: 30,
      supersedes: (next, current) => next.id >= current.id,
      combine: (current, next) => (next.id >= current.id ? next : current),
    });
    q.push({ id: 1, entity: 'a', state: true });
    expect(await q.take(1)).toEqual([1]);
    q.push({ id: 5, entity: 'a', state: true }); // held
    q.push({ id: 3, entity: 'a', state: true }); // older: dropped, counted
    q.push({ id: 4, entity: 'a', state: true }); // older: dropped, counted
    expect(await q.take(1)).toEqual([5]);
    expect(q.counts.coalesced).toBe(2);
    q.push({ id: 2, entity: 'a', state: true }); // older than what was just delivered: dropped
    q.push({ id: 6, entity: 'a', state: true });
    expect(await q.take(1)).toEqual([6]);
    expect(q.counts.coalesced).toBe(3);
    expect(
      supersedes({ occurredAt: '2026-11-24T10:00:01.000Z' } as GatewayEvent, { occurredAt: '2026-11-24T10:00:00.500Z' } as GatewayEvent),
    ).toBe(true);
    expect(
      supersedes({ occurredAt: '2026-11-24T09:59:59.000Z' } as GatewayEvent, { occurredAt: '2026-11-24T10:00:00.000Z' } as GatewayEvent),
    ).toBe(false);
  });

  it('does not coalesce when the window is 0', async () => {
    const q = queue({ coalesceMs: 0 });
    q.push({ id: 1, entity: 'a', state: true });
    q.push({ id: 2, entity: 'a', state: true });
    expect(await q.take(2)).toEqual([1, 2]);
  });
});

describe('coalescing keys', () => {
  const quota = (kind: QuotaEventKind, userId = 'u1') =>
    ({ family: 'quota', kind, userId, eventId: 'e', type: 't', occurredAt: 'x' }) as GatewayEvent;
  it.each([
    ['UPDATED', true],
    ['DEDUCTED', true],
    ['RESTORED', true],
    ['RENEWED', true],
    ['ALERT', false],
    ['EXCEEDED', false],
    ['DELETED', false],
  ] as const)('quota %s is state-like: %p, keyed per user', (kind, coalesce) => {
    expect(coalescingKey(quota(kind))).toEqual({ entity: 'quota:u1', coalesce });
    expect(coalescingKey(quota(kind, 'u2'))?.entity).toBe('quota:u2');
  });

  it('device status events are state-like per device, except DELETED; orders and app installs never coalesce', () => {
    const header = { eventId: 'e', type: 't', userId: 'u1', occurredAt: 'x' };
    const device = (deviceId: string, status: string) => ({ ...header, family: 'device', deviceId, status }) as unknown as GatewayEvent;
    expect(coalescingKey(device('d1', 'RUNNING'))).toEqual({ entity: 'device:d1', coalesce: true });
    expect(coalescingKey(device('d2', 'STOPPED'))).toEqual({ entity: 'device:d2', coalesce: true });
    expect(coalescingKey(device('d1', 'DELETED'))).toEqual({ entity: 'device:d1', coalesce: false });
    expect(coalescingKey({ ...header, family: 'order', orderId: 'o1' } as unknown as GatewayEvent)).toBeUndefined();
    expect(coalescingKey({ ...header, family: 'app', deviceId: 'd1', appId: 'a' } as unknown as GatewayEvent)).toBeUndefined();
  });

  it('combines partial quota snapshots (newer wins, gaps filled from the older), whatever the arrival order', () => {
    const header = { family: 'quota', userId: 'u1', type: 'quota.updated', kind: 'UPDATED' };
    const limitsOnly = {
      ...header,
      eventId: 'e1',
      occurredAt: '2026-11-24T10:00:00.000Z',
      limits: { maxDevices: 5, totalCpuCores: 8 },
    } as unknown as GatewayEvent;
    const usageOnly = {
      ...header,
      eventId: 'e2',
      type: 'quota.deducted',
      kind: 'DEDUCTED',
      occurredAt: '2026-11-24T10:00:01.000Z',
      limits: { totalCpuCores: 16 },
      usage: { currentDevices: 2 },
    } as unknown as GatewayEvent;
    const expected = {
      eventId: 'e2',
      kind: 'DEDUCTED',
      occurredAt: '2026-11-24T10:00:01.000Z',
      limits: { maxDevices: 5, totalCpuCores: 16 },
      usage: { currentDevices: 2 },
    };
    expect(combine(limitsOnly, usageOnly)).toMatchObject(expected);
    expect(combine(usageOnly, limitsOnly)).toMatchObject(expected);
  });

  it('keeps a newer device status whole and only fills in its names', () => {
    const older = {
      family: 'device',
      userId: 'u1',
      deviceId: 'd1',
      eventId: 'a',
      type: 'device.started',
      occurredAt: '2026-11-24T10:00:00.000Z',
      status: 'RUNNING',
      previousStatus: 'IDLE',
      deviceName: 'phone',
      providerType: 'redroid',
    } as unknown as GatewayEvent;
    const newer = {
      family: 'device',
      userId: 'u1',
      deviceId: 'd1',
      eventId: 'b',
      type: 'device.stopped',
      occurredAt: '2026-11-24T10:00:01.000Z',
      status: 'STOPPED',
    } as unknown as GatewayEvent;
    const combined = combine(older, newer) as unknown as Record<string, unknown>;
    expect(combined).toMatchObject({ eventId: 'b', status: 'STOPPED', deviceName: 'phone', providerType: 'redroid' });
    expect(combined.previousStatus).toBeUndefined();
  });
});

describe('event queue: pushed to a sink (the socket fast path)', () => {
  const pushed = (options: Partial<QueueOptions<Ev>> = {}) => {
    const q = queue(options);
    const got: number[] = [];
    const ends: (Error | undefined)[] = [];
    let open = true;
    q.iterator.attach({
      offer: (e) => {
        if (!open) return false;
        got.push(e.id);
        return true;
      },
      ended: (error) => ends.push(error),
    });
    return { ...q, got, ends, setOpen: (value: boolean) => (open = value) };
  };

  it('delivers synchronously, in order, and delivers what waited before attach first', () => {
    const q = queue();
    q.push({ id: 1 });
    q.push({ id: 2 });
    const got: number[] = [];
    q.iterator.attach({ offer: (e) => (got.push(e.id), true), ended: () => undefined });
    q.push({ id: 3 });
    expect(got).toEqual([1, 2, 3]);
  });

  it('keeps events waiting, in order, while the sink is backed up, and flushes them when told', () => {
    const q = pushed();
    q.push({ id: 1 });
    q.setOpen(false);
    q.push({ id: 2 });
    q.push({ id: 3 });
    q.setOpen(true);
    // Nothing overtakes what waits, even once the sink takes again.
    q.push({ id: 4 });
    expect(q.got).toEqual([1]);
    q.iterator.flush();
    expect(q.got).toEqual([1, 2, 3, 4]);
  });

  it('coalesces a state event while it waits for a backed-up sink', () => {
    const q = pushed({ coalesceMs: 50 });
    q.setOpen(false);
    q.push({ id: 1, entity: 'a', state: true });
    q.push({ id: 2, entity: 'a', state: true });
    q.push({ id: 3, entity: 'b' });
    q.setOpen(true);
    q.iterator.flush();
    expect(q.got).toEqual([2, 3]);
    expect(q.counts.coalesced).toBe(1);
  });

  it('ends with SlowConsumerError once more than maxBuffered wait, releasing once', () => {
    const q = pushed({ maxBuffered: 3, coalesceMs: 0 });
    q.setOpen(false);
    for (let id = 1; id <= 4; id++) q.push({ id });
    expect(q.ends).toHaveLength(1);
    expect(q.ends[0]).toBeInstanceOf(SlowConsumerError);
    expect(q.released.count).toBe(1);
    expect(q.counts.overflowed).toBe(1);
    q.setOpen(true);
    q.iterator.flush();
    expect(q.got).toEqual([]);
  });

  it('ends without an error on return(), and tells a late attach at once', async () => {
    const q = pushed();
    await q.iterator.return?.();
    expect(q.ends).toEqual([undefined]);
    const late: (Error | undefined)[] = [];
    q.iterator.attach({ offer: () => true, ended: (error) => late.push(error) });
    expect(late).toEqual([undefined]);
  });
});

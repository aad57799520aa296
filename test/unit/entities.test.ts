/** Pure pieces of the entity domains: event ordering, cursors and page bounds, the batch loader. */
// Typed matchers: @types/jest's expect.objectContaining()/any() return `any`.
import { expect } from '@jest/globals';
import 'reflect-metadata';
import { BatchLoader, loaderFor } from '../../src/domains/shared/batch-loader';
import { encodeCursor, pageRequest, toConnection } from '../../src/domains/shared/connection';
import { isNewerThan } from '../../src/domains/shared/event-order';
import { usagePercent } from '../../src/domains/quota/quota.service';

describe('isNewerThan', () => {
  const row = { lastEventAt: new Date('2026-11-24T12:00:00.000Z'), lastEventId: 'm' };
  it('orders by occurredAt, then by eventId, and takes anything over a row without events', () => {
    expect(isNewerThan(row, new Date('2026-11-24T12:00:00.001Z'), 'a')).toBe(true);
    expect(isNewerThan(row, new Date('2026-11-24T11:59:59.999Z'), 'z')).toBe(false);
    expect(isNewerThan(row, new Date('2026-11-24T12:00:00.000Z'), 'n')).toBe(true);
    expect(isNewerThan(row, new Date('2026-11-24T12:00:00.000Z'), 'l')).toBe(false);
    expect(isNewerThan(row, new Date('2026-11-24T12:00:00.000Z'), 'm')).toBe(false); // the same event again
    expect(isNewerThan({ lastEventAt: null, lastEventId: null }, new Date(0), '')).toBe(true);
  });
});

describe('pages', () => {
  it('round-trips cursors and refuses what it did not issue', () => {
    const position = { createdAt: new Date('2026-11-24T12:00:00.123Z'), id: 'dev-1' };
    expect(pageRequest(5, encodeCursor(position))).toEqual({ take: 5, after: position });
    expect(pageRequest(undefined, undefined)).toEqual({ take: 20, after: undefined });
    for (const [first, after] of [
      [0, null],
      [101, null],
      [1.5, null],
      [10, 'bm90IGEgY3Vyc29y'],
      [10, '!!'],
    ] as const) {
      expect(() => pageRequest(first, after)).toThrow(
        expect.objectContaining({ extensions: expect.objectContaining({ code: 'BAD_USER_INPUT' }) }),
      );
    }
  });

  it('says whether another page follows from the extra row', () => {
    const rows = [3, 2, 1].map((n) => ({ createdAt: new Date(n * 1000), id: `r${n}` }));
    const page = toConnection(rows, 2, (r) => r.id);
    expect(page.edges.map((e) => e.node)).toEqual(['r3', 'r2']);
    expect(page.pageInfo).toEqual({ hasNextPage: true, endCursor: page.edges[1]?.cursor });
    expect(toConnection([], 2, (r: { id: string }) => r.id).pageInfo).toEqual({ hasNextPage: false, endCursor: null });
  });
});

describe('BatchLoader', () => {
  it('answers every load of one tick with one batch, even a few promise hops apart', async () => {
    const batches: string[][] = [];
    const loader = new BatchLoader(
      async (keys: readonly string[]) => {
        batches.push([...keys]);
        return new Map(keys.filter((k) => k !== 'missing').map((k) => [k, k.toUpperCase()]));
      },
      () => 'none',
    );
    const later = async (key: string) => {
      await Promise.resolve();
      await Promise.resolve();
      return loader.load(key);
    };
    const results = await Promise.all([loader.load('a'), later('b'), loader.load('a'), later('missing')]);
    expect(results).toEqual(['A', 'B', 'A', 'none']);
    expect(batches).toEqual([['a', 'b', 'missing']]);
  });

  it('is per context: two requests never share a loader', () => {
    const make = () =>
      new BatchLoader(
        async () => new Map<string, string>(),
        () => '',
      );
    const one = {};
    const two = {};
    expect(loaderFor(one, 'x', make)).toBe(loaderFor(one, 'x', make));
    expect(loaderFor(one, 'x', make)).not.toBe(loaderFor(two, 'x', make));
  });
});

describe('usagePercent', () => {
  it('is the highest usage/limit ratio over resources with a positive limit', () => {
    const none = Object.fromEntries(
      [
        'currentDevices',
        'maxDevices',
        'currentConcurrentDevices',
        'maxConcurrentDevices',
        'usedCpuCores',
        'totalCpuCores',
        'usedMemoryGB',
        'totalMemoryGB',
        'usedStorageGB',
        'totalStorageGB',
        'monthlyTrafficUsedGB',
        'monthlyTrafficGB',
        'todayUsageHours',
        'maxUsageHoursPerDay',
        'monthlyUsageHours',
        'maxUsageHoursPerMonth',
      ].map((k) => [k, null]),
    ) as unknown as Parameters<typeof usagePercent>[0];
    expect(usagePercent(none)).toBeUndefined();
    expect(usagePercent({ ...none, currentDevices: 1, maxDevices: 4, usedMemoryGB: 3, totalMemoryGB: 4 })).toBe(75);
    expect(usagePercent({ ...none, monthlyTrafficUsedGB: 12.5, monthlyTrafficGB: 10, usedCpuCores: 5, totalCpuCores: 0 })).toBe(125);
  });
});

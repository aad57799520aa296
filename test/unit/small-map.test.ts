/** `SmallMap` (src/lib/small-map.ts) behaves as a `Map` would for the operations a session uses. */
import { SmallMap } from '../../src/lib/small-map';

describe('SmallMap', () => {
  it('matches a Map over a random sequence of set, delete, get, has, clear', () => {
    let seed = 11;
    const next = () => (seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31);
    for (let run = 0; run < 50; run++) {
      const small = new SmallMap<string, number>();
      const map = new Map<string, number>();
      for (let step = 0; step < 200; step++) {
        const key = `k${next() % 4}`;
        const op = next() % 10;
        if (op < 4) {
          small.set(key, step);
          map.set(key, step);
        } else if (op < 7) expect(small.delete(key)).toBe(map.delete(key));
        else if (op < 9) {
          expect(small.get(key)).toBe(map.get(key));
          expect(small.has(key)).toBe(map.has(key));
        } else if (next() % 5 === 0) {
          small.clear();
          map.clear();
        }
        expect(small.size).toBe(map.size);
        expect(small.values()).toEqual([...map.values()]);
      }
    }
  });

  it('gives a copy of its values: changing it meanwhile does not change what is iterated', () => {
    const small = new SmallMap<string, number>().set('a', 1).set('b', 2);
    const values = small.values();
    small.clear();
    expect(values).toEqual([1, 2]);
    expect(small.size).toBe(0);
  });
});

/**
 * Many deadlines on one timer (src/lib/deadlines.ts): each item is due at its own time, in time
 * order, once; moving and cancelling work from anywhere in the heap; one timer is armed at most.
 */
import { Deadlines, type Scheduled } from '../../src/lib/deadlines';

class Item implements Scheduled {
  deadlineSlot = -1;
  constructor(readonly name: string) {}
}

const START = 1_700_000_000_000;

describe('deadlines on one timer', () => {
  beforeEach(() => {
    jest.useFakeTimers({ now: START });
  });
  afterEach(() => {
    jest.useRealTimers();
  });

  it('calls each item once, at its time, in time order', () => {
    const due: string[] = [];
    const deadlines = new Deadlines<Item>((item) => due.push(`${item.name}@${Date.now() - START}`));
    const at = [50, 10, 30, 10, 70, 20];
    at.forEach((ms, i) => deadlines.schedule(new Item(`i${i}`), START + ms));
    expect(jest.getTimerCount()).toBe(1);
    jest.advanceTimersByTime(9);
    expect(due).toEqual([]);
    jest.advanceTimersByTime(100);
    expect(due).toEqual(['i1@10', 'i3@10', 'i5@20', 'i2@30', 'i0@50', 'i4@70']);
    expect(deadlines.size).toBe(0);
    expect(jest.getTimerCount()).toBe(0);
  });

  it('moves an item earlier or later, and cancels one from the middle of the heap', () => {
    const due: string[] = [];
    const deadlines = new Deadlines<Item>((item) => due.push(`${item.name}@${Date.now() - START}`));
    const items = Array.from({ length: 20 }, (_, i) => new Item(`i${i}`));
    items.forEach((item, i) => deadlines.schedule(item, START + 100 + i * 10));
    deadlines.schedule(items[15]!, START + 5); // earlier
    deadlines.schedule(items[0]!, START + 1_000); // later (it was first)
    deadlines.cancel(items[7]!);
    deadlines.cancel(items[7]!); // twice: nothing
    expect(items[7]!.deadlineSlot).toBe(-1);
    jest.advanceTimersByTime(2_000);
    const expected = [
      'i15@5',
      ...items.slice(1).flatMap((item, k) => (k + 1 === 7 || k + 1 === 15 ? [] : [`${item.name}@${100 + (k + 1) * 10}`])),
      'i0@1000',
    ];
    expect(due).toEqual(expected);
  });

  it('can reschedule the item it is calling, and cancels its timer once nothing is left', () => {
    const due: string[] = [];
    const deadlines = new Deadlines<Item>((item) => {
      due.push(`${item.name}@${Date.now() - START}`);
      if (due.length < 3) deadlines.schedule(item, Date.now() + 25);
    });
    const item = new Item('renewed');
    deadlines.schedule(item, START + 10);
    jest.advanceTimersByTime(200);
    expect(due).toEqual(['renewed@10', 'renewed@35', 'renewed@60']);
    const other = new Item('other');
    deadlines.schedule(other, START + 10_000);
    deadlines.cancel(other);
    expect(jest.getTimerCount()).toBe(0);
  });

  it('reaches a deadline past setTimeout’s ceiling (~24.8 days) in steps', () => {
    const due: number[] = [];
    const deadlines = new Deadlines<Item>(() => due.push(Date.now() - START));
    const days = (n: number) => n * 24 * 3600 * 1000;
    deadlines.schedule(new Item('far'), START + days(30));
    jest.advanceTimersByTime(days(29));
    expect(due).toEqual([]);
    jest.advanceTimersByTime(days(2));
    expect(due).toEqual([days(30)]);
  });

  it('re-arms when its timer fires before the clock says the item is due', () => {
    let lag = 0;
    const due: string[] = [];
    const deadlines = new Deadlines<Item>(
      () => due.push(`timer ${Date.now() - START}, clock ${Date.now() - lag - START}`),
      () => Date.now() - lag,
    );
    deadlines.schedule(new Item('a'), START + 10);
    lag = 3;
    jest.advanceTimersByTime(10);
    expect(due).toEqual([]);
    jest.advanceTimersByTime(5);
    expect(due).toEqual(['timer 13, clock 10']);
  });
});

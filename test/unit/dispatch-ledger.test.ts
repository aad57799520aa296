/**
 * Queues sharing one topic's `DispatchLedger` (the Redis fan-out's, docs/decisions/0605) must decide
 * exactly as queues of their own: the same events, in the same order, at the same times, the same
 * coalesced and overflowed counts, whatever their consumers do (keep up, back up, drain), whenever
 * they joined, with events out of order and entities mixed. Each scenario runs the same random
 * script twice on fake timers: once through `push` on independent queues (the reference), once
 * through `DispatchLedger.dispatch` + `pushDispatched`.
 */
import { DispatchLedger } from '../../src/lib/dispatch-ledger';
import { EventQueue, type QueueOptions } from '../../src/lib/event-queue';

interface Ev {
  readonly id: number;
  readonly entity?: string;
  readonly state: boolean;
  /** Its own time (for `supersedes`): may go backwards (redeliveries). */
  readonly t: number;
  /** Ids combined into it while it waited. */
  readonly merged: readonly number[];
}

const classify = (e: Ev) => (e.entity === undefined ? undefined : { entity: e.entity, coalesce: e.state });

/** A small seeded PRNG (mulberry32): each scenario is reproducible from its seed. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Step =
  | { kind: 'event'; event: Ev }
  | { kind: 'advance'; ms: number }
  | { kind: 'block'; queue: number; blocked: boolean }
  | { kind: 'join' }
  | { kind: 'stop'; queue: number };

function script(seed: number, steps: number): Step[] {
  const next = random(seed);
  const out: Step[] = [];
  let id = 0;
  let t = 1_000;
  for (let i = 0; i < steps; i++) {
    const r = next();
    if (r < 0.55) {
      t += Math.floor(next() * 40) - 10;
      const entity = next() < 0.15 ? undefined : `e${Math.floor(next() * 4)}`;
      out.push({ kind: 'event', event: { id: ++id, entity, state: next() < 0.75, t, merged: [] } });
    } else if (r < 0.8) out.push({ kind: 'advance', ms: Math.floor(next() * 70) });
    else if (r < 0.95) out.push({ kind: 'block', queue: Math.floor(next() * 4), blocked: next() < 0.5 });
    else if (r < 0.98) out.push({ kind: 'join' });
    else out.push({ kind: 'stop', queue: Math.floor(next() * 4) });
  }
  return out;
}

interface Outcome {
  readonly deliveries: string[][];
  readonly ends: string[];
  coalesced: number;
  overflowed: number;
}

function run(steps: readonly Step[], shared: boolean, maxBuffered: number): Outcome {
  const outcome: Outcome = { deliveries: [], ends: [], coalesced: 0, overflowed: 0 };
  const options: QueueOptions<Ev> = {
    maxBuffered,
    coalesceMs: 100,
    classify,
    supersedes: (next, current) => next.t >= current.t,
    combine: (current, next) => ({ ...next, merged: [...current.merged, current.id, ...next.merged] }),
    onCoalesced: () => outcome.coalesced++,
    onOverflow: () => outcome.overflowed++,
  };
  const ledger = new DispatchLedger<Ev>(options.coalesceMs);
  const queues: EventQueue<Ev>[] = [];
  const blocked: boolean[] = [];
  const join = () => {
    const index = queues.length;
    const queue = new EventQueue<Ev>(() => undefined, options, shared ? ledger : undefined);
    const log: string[] = [];
    outcome.deliveries.push(log);
    blocked.push(false);
    queue.attach({
      offer: (e) => {
        if (blocked[index]) return false;
        log.push(`${Date.now()}:${e.id}${e.merged.length > 0 ? `+${e.merged.join('+')}` : ''}`);
        return true;
      },
      ended: (error) => outcome.ends.push(`${index}@${Date.now()}:${error?.name ?? 'done'}`),
    });
    queues.push(queue);
  };
  for (let i = 0; i < 3; i++) join();
  for (const step of steps) {
    switch (step.kind) {
      case 'event': {
        if (shared) {
          const kind = classify(step.event);
          const now = Date.now();
          const previous = ledger.dispatch(kind?.entity, step.event, now);
          for (const queue of queues) queue.pushDispatched(step.event, kind, now, previous);
        } else for (const queue of queues) queue.push(step.event);
        break;
      }
      case 'advance':
        jest.advanceTimersByTime(step.ms);
        break;
      case 'block':
        if (step.queue < queues.length) {
          blocked[step.queue] = step.blocked;
          if (!step.blocked) queues[step.queue]!.flush();
        }
        break;
      case 'join':
        if (queues.length < 6) join();
        break;
      case 'stop':
        if (step.queue < queues.length) void queues[step.queue]!.return();
        break;
    }
  }
  jest.advanceTimersByTime(1_000);
  for (let i = 0; i < queues.length; i++) {
    blocked[i] = false;
    queues[i]!.flush();
  }
  return outcome;
}

describe('queues sharing a dispatch ledger decide as queues of their own', () => {
  beforeEach(() => {
    jest.useFakeTimers({ now: 1_700_000_000_000 });
  });
  afterEach(() => {
    jest.useRealTimers();
  });

  it.each([
    ['roomy buffers', 1_000],
    ['tight buffers (overflows)', 4],
  ])('random scripts, %s', (_name, maxBuffered) => {
    let coalesced = 0;
    for (let seed = 1; seed <= 150; seed++) {
      const steps = script(seed, 250);
      const reference = run(steps, false, maxBuffered);
      jest.setSystemTime(1_700_000_000_000);
      const ledger = run(steps, true, maxBuffered);
      jest.setSystemTime(1_700_000_000_000);
      expect({ seed, ...ledger }).toEqual({ seed, ...reference });
      coalesced += reference.coalesced;
    }
    // The scripts do exercise coalescing (and, with tight buffers, overflows).
    expect(coalesced).toBeGreaterThan(100);
  });

  it('holds for a queue that had the previous event, not for one that joined after it', () => {
    const options: QueueOptions<Ev> = { maxBuffered: 10, coalesceMs: 100, classify };
    const ledger = new DispatchLedger<Ev>(100);
    const got: Record<string, number[]> = { early: [], late: [] };
    const early = new EventQueue<Ev>(() => undefined, options, ledger);
    early.attach({ offer: (e) => (got.early!.push(e.id), true), ended: () => undefined });
    const dispatch = (event: Ev, queues: EventQueue<Ev>[]) => {
      const previous = ledger.dispatch(event.entity, event, Date.now());
      for (const queue of queues) queue.pushDispatched(event, classify(event), Date.now(), previous);
    };
    dispatch({ id: 1, entity: 'a', state: true, t: 1, merged: [] }, [early]);
    const late = new EventQueue<Ev>(() => undefined, options, ledger);
    late.attach({ offer: (e) => (got.late!.push(e.id), true), ended: () => undefined });
    jest.advanceTimersByTime(10);
    dispatch({ id: 2, entity: 'a', state: true, t: 2, merged: [] }, [early, late]);
    expect(got).toEqual({ early: [1], late: [2] });
    jest.advanceTimersByTime(90);
    expect(got).toEqual({ early: [1, 2], late: [2] });
  });

  it('keeps no record of its own while a queue keeps up', () => {
    const options: QueueOptions<Ev> = { maxBuffered: 10, coalesceMs: 100, classify };
    const ledger = new DispatchLedger<Ev>(100);
    const queue = new EventQueue<Ev>(() => undefined, options, ledger);
    queue.attach({ offer: () => true, ended: () => undefined });
    for (let id = 1; id <= 50; id++) {
      const event: Ev = { id, entity: `e${id}`, state: true, t: id, merged: [] };
      queue.pushDispatched(event, classify(event), Date.now(), ledger.dispatch(event.entity, event, Date.now()));
    }
    expect((queue as unknown as { lastSent: unknown }).lastSent).toBeUndefined();
  });
});

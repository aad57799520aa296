/** The bench's verdicts on issue 16's targets (and issue 7's kept), from made-up rows. */
import type { Mode, PhaseResult } from '../bench/load';
import { markdownTable, systemFigures, type Row, type SearchStep } from '../bench/report';
import type { ServerKind } from '../bench/server';
import type { ServicesCpu } from '../bench/system-cpu';
import { evaluateTargets, formatVerdict, markdownTargets, type Verdict } from '../bench/targets';

function phase(over: Partial<PhaseResult> = {}): PhaseResult {
  return {
    targetRate: 1000,
    events: 10_000,
    publishRate: 1000,
    expected: 10_000,
    delivered: 10_000,
    lost: 0,
    late: 0,
    duplicated: 0,
    misrouted: 0,
    deliveriesPerSec: 1000,
    p50: 1,
    p99: 10,
    max: 20,
    seconds: 10,
    ...over,
  };
}

interface Made {
  scenario?: Mode;
  c?: number;
  server?: ServerKind;
  /** The server's own CPU per event, µs. */
  cpu?: number;
  /** PostgreSQL's and Redis's per event, µs. */
  pg?: number;
  redis?: number;
  fixed?: Partial<PhaseResult>;
  heapKb?: number;
  search?: { steps: Partial<SearchStep>[]; maxSustainableRate: number | null };
}

function row(m: Made): Row {
  const fixed = phase(m.fixed);
  const perDelivery = m.scenario === 'fan-out' || m.scenario === 'broadcast' ? (m.c ?? 1000) : 1;
  const delivered = m.fixed?.delivered ?? fixed.events * perDelivery;
  const fixedWithDeliveries = { ...fixed, delivered, expected: fixed.events * perDelivery };
  const cpuUs = (m.cpu ?? 100) * fixed.events;
  const services: ServicesCpu = { postgres: (m.pg ?? 0) * fixed.events, redis: (m.redis ?? 0) * fixed.events, rabbitmq: 50 * fixed.events };
  return {
    scenario: m.scenario ?? 'per-user',
    c: m.c ?? 1000,
    server: m.server ?? 'gateway',
    fixed: fixedWithDeliveries,
    cpuUs,
    cpuPerDeliveryUs: cpuUs / delivered,
    cpuPerEventUs: cpuUs / fixed.events,
    services,
    ...systemFigures(cpuUs, services, fixed.events, delivered),
    heapPerSocketBytes: (m.heapKb ?? 4) * 1024,
    rssPerSocketBytes: 0,
    idle: { heapUsed: 0, rss: 0 },
    subscribed: { heapUsed: 0, rss: 0 },
    search: m.search && {
      maxSustainableRate: m.search.maxSustainableRate,
      steps: m.search.steps.map((s) => ({ ...phase(), ok: true, cpuPerEventUs: 0, systemPerEventUs: 0, ...s })),
    },
    problems: [],
  };
}

const find = (verdicts: Verdict[], start: string): Verdict => {
  const v = verdicts.find((x) => x.name.startsWith(start));
  if (!v) throw new Error(`no verdict "${start}" in ${verdicts.map((x) => x.name).join(' / ')}`);
  return v;
};

describe('per-user system CPU per event <= 2x raw', () => {
  it("passes on the system figure, counting the gateway's PostgreSQL and Redis", () => {
    const v = find(
      evaluateTargets([
        row({ c: 1000, cpu: 200, pg: 80, redis: 20 }), // 300
        row({ c: 1000, server: 'raw', cpu: 150 }), // 150: exactly 2x
        row({ c: 5000, cpu: 250 }),
        row({ c: 5000, server: 'raw', cpu: 150 }),
      ]),
      'per-user system CPU',
    );
    expect(v.status).toBe('PASS');
    expect(v.issue).toBe(16);
    expect(v.text).toContain(
      'C=1000 2.00x (300 = 200 gateway + 80.0 PostgreSQL + 20.0 Redis vs 150 = 150 raw + 0.00 PostgreSQL + 0.00 Redis µs)',
    );
  });

  it('fails when PostgreSQL and Redis push the gateway over, though its own CPU alone is within 2x', () => {
    const v = find(
      evaluateTargets([row({ c: 1000, cpu: 250, pg: 60, redis: 10 }), row({ c: 1000, server: 'raw', cpu: 150 })]),
      'per-user system CPU',
    );
    expect(v.status).toBe('FAIL');
    expect(v.text).toContain('C=1000 2.13x');
    expect(v.text).toContain('C=5000 not measured');
  });

  it('counts the background raw saw on PostgreSQL and Redis on its side too', () => {
    const v = find(
      evaluateTargets([row({ c: 1000, cpu: 250, pg: 60 }), row({ c: 1000, server: 'raw', cpu: 150, pg: 10 })]),
      'per-user system CPU',
    );
    expect(v.status).toBe('PASS'); // 310 / 160
  });

  it("says so when raw's window was not quiet (PostgreSQL and Redis busy with others' work)", () => {
    const quiet = find(evaluateTargets([row({ cpu: 250 }), row({ server: 'raw', cpu: 150, pg: 15 })]), 'per-user system CPU');
    expect(quiet.text).not.toContain('NOT QUIET');
    const noisy = find(evaluateTargets([row({ cpu: 250 }), row({ server: 'raw', cpu: 150, pg: 16 })]), 'per-user system CPU');
    expect(noisy.text).toContain("[NOT QUIET: raw's window saw 16.0 µs/event on PostgreSQL and Redis, which it does not use]");
  });

  it('is skipped without the raw baseline', () => {
    const v = find(evaluateTargets([row({ c: 1000 }), row({ c: 1000, server: 'graphql-ws' })]), 'per-user system CPU');
    expect(v.status).toBe('SKIP');
    expect(v.text).toBe('C=1000, C=5000 not measured');
  });
});

describe('per-user p99 at 1000 ev/s', () => {
  it('holds C=5000 under 50 ms and C=10000 under 100 ms', () => {
    const pass = evaluateTargets([row({ c: 5000, fixed: { p99: 49.9 } }), row({ c: 10_000, fixed: { p99: 99 } })]);
    expect(find(pass, 'per-user p99').status).toBe('PASS');
    const fail = evaluateTargets([row({ c: 5000, fixed: { p99: 49.9 } }), row({ c: 10_000, fixed: { p99: 100 } })]);
    expect(find(fail, 'per-user p99')).toMatchObject({ status: 'FAIL', text: 'C=5000 p99 49.9 ms (< 50); C=10000 p99 100 ms (< 100)' });
  });

  it('judges only windows at 1000 ev/s', () => {
    const v = find(evaluateTargets([row({ c: 5000, fixed: { targetRate: 500, p99: 10 } })]), 'per-user p99');
    expect(v.status).toBe('SKIP');
  });
});

describe("max sustainable per-user rate at C=1000 >= raw's", () => {
  const search = (max: number | null, allOk = false) => ({ maxSustainableRate: max, steps: [{ targetRate: 2000, ok: allOk }] });

  it('passes at or above raw, fails below', () => {
    const at = evaluateTargets([row({ search: search(4000) }), row({ server: 'raw', search: search(4000) })]);
    expect(find(at, 'max sustainable').status).toBe('PASS');
    const below = evaluateTargets([row({ search: search(2000) }), row({ server: 'raw', search: search(4000) })]);
    expect(find(below, 'max sustainable')).toMatchObject({ status: 'FAIL', text: 'gateway 2000/s, raw 4000/s' });
  });

  it('fails when the gateway did not hold the fixed rate, whatever raw did', () => {
    const v = find(evaluateTargets([row({ search: search(null) }), row({ server: 'raw', search: search(null) })]), 'max sustainable');
    expect(v).toMatchObject({ status: 'FAIL', text: 'gateway < 1000/s, raw < 1000/s' });
  });

  it("says when both reached the search's ceiling", () => {
    const v = find(
      evaluateTargets([row({ search: search(16_000, true) }), row({ server: 'raw', search: search(16_000, true) })]),
      'max sustainable',
    );
    expect(v.status).toBe('PASS');
    expect(v.text).toContain("gateway 16000/s (the search's ceiling)");
  });

  it('is skipped without a search', () => {
    expect(find(evaluateTargets([row({}), row({ server: 'raw' })]), 'max sustainable').status).toBe('SKIP');
  });
});

describe('fan-out system CPU per delivery <= 1.3x raw', () => {
  it('judges system CPU per delivery, showing the processes alone beside it', () => {
    // 1000 deliveries per event: 13 + 0.2 PostgreSQL/Redis per event spread over them.
    const rows = [
      row({ scenario: 'fan-out', c: 1000, cpu: 13_000, pg: 100, redis: 100, fixed: { events: 100 } }),
      row({ scenario: 'fan-out', c: 1000, server: 'raw', cpu: 10_000, fixed: { events: 100 } }),
    ];
    const v = find(evaluateTargets(rows), 'fan-out system CPU');
    expect(v.status).toBe('FAIL'); // 13.2 / 10 = 1.32
    expect(v.text).toBe('C=1000 1.32x (13.20 vs 10.00 µs; the processes alone 1.30x, 13.00 vs 10.00)');
  });
});

describe('heap, correctness and the issue-7 targets kept', () => {
  it('heap per socket <= 2x raw over per-user and fan-out', () => {
    const v = find(
      evaluateTargets([
        row({ heapKb: 8 }),
        row({ server: 'raw', heapKb: 4 }),
        row({ scenario: 'fan-out', c: 300, heapKb: 9 }),
        row({ scenario: 'fan-out', c: 300, server: 'raw', heapKb: 4 }),
      ]),
      'heap per subscribed socket',
    );
    expect(v).toMatchObject({ status: 'FAIL', text: 'per-user C=1000 2.00x (8.00 vs 4.00 KB); fan-out C=300 2.25x (9.00 vs 4.00 KB)' });
  });

  it('fails on a gateway loss, a duplicate or misroute in a search step, never on a baseline', () => {
    const ok = evaluateTargets([row({}), row({ server: 'raw', fixed: { lost: 5 } })]);
    expect(find(ok, '0 lost')).toMatchObject({ status: 'PASS', text: '10000 deliveries in 1 windows' });
    const lost = evaluateTargets([row({ fixed: { lost: 1 } })]);
    expect(find(lost, '0 lost').status).toBe('FAIL');
    const misrouted = evaluateTargets([row({ search: { maxSustainableRate: 2000, steps: [{ misrouted: 2 }] } })]);
    expect(find(misrouted, '0 lost')).toMatchObject({ status: 'FAIL', text: 'per-user C=1000 gateway: 0 lost, 0 duplicated, 2 misrouted' });
  });

  it("keeps issue 7's broadcast and flatness targets, on the gateway's own CPU", () => {
    const verdicts = evaluateTargets([
      row({ scenario: 'broadcast', c: 300, cpu: 300 * 14, pg: 3000 }),
      row({ scenario: 'broadcast', c: 300, server: 'raw', cpu: 300 * 10 }),
      row({ c: 1000, cpu: 100 }),
      row({ c: 10_000, cpu: 151 }),
    ]);
    expect(find(verdicts, 'broadcast')).toMatchObject({ status: 'PASS', issue: 7 });
    expect(find(verdicts, 'broadcast').text).toContain('system 2.40x');
    expect(find(verdicts, 'per-user CPU per event roughly flat')).toMatchObject({ status: 'FAIL', issue: 7 });
  });

  it('has no issue-7 line issue 16 replaced (fan-out 1.5x, C=5000 p99 alone)', () => {
    const names = evaluateTargets([]).map((v) => v.name);
    expect(names).not.toContain('fan-out CPU per delivery <= 1.5x raw');
    expect(names.filter((n) => n.startsWith('per-user p99'))).toEqual([
      'per-user p99 < 50 ms at C=5000 and < 100 ms at C=10000, at 1000 ev/s',
    ]);
    expect(evaluateTargets([]).every((v) => v.status === 'SKIP')).toBe(true);
  });
});

describe('printing', () => {
  it('prints a verdict as one line and the verdicts as a Markdown table', () => {
    const verdicts = evaluateTargets([row({ c: 5000, fixed: { p99: 40 } })]);
    const p99 = find(verdicts, 'per-user p99');
    expect(formatVerdict(p99)).toBe(
      'PASS  [16] per-user p99 < 50 ms at C=5000 and < 100 ms at C=10000, at 1000 ev/s: C=5000 p99 40.0 ms (< 50); C=10000 not measured',
    );
    const md = markdownTargets(verdicts).split('\n');
    expect(md[0]).toBe('| target (issue) | result |');
    expect(md).toContain(
      '| per-user p99 < 50 ms at C=5000 and < 100 ms at C=10000, at 1000 ev/s (16) | **PASS**: C=5000 p99 40.0 ms (< 50); C=10000 not measured |',
    );
  });

  it('groups the Markdown results table by scenario and C, system in bold', () => {
    const md = markdownTable([row({ cpu: 600, pg: 100, redis: 50 }), row({ server: 'raw', cpu: 150 })]).split('\n');
    expect(md).toHaveLength(4);
    expect(md[2]).toMatch(
      /^\| per-user @1,000 ev\/s \| 1,000 \| gateway +\| +1,000 \| +1.00 \| +10.0 \| +600 \| +100 \| +50.0 \| +\*\*750\*\* \| +50.0 \| +4.00 \| +0 \| +0 \| +\|$/,
    );
    expect(md[3]).toMatch(/^\| +\| +\| raw `ws` +\|/);
  });
});

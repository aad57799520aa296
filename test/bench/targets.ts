/**
 * The targets a run is judged by, as ratios and thresholds within that run: issue 16's (the hot
 * path at the cost of raw WebSocket) and those of issue 7 it did not replace. Pure: rows in,
 * verdicts out; run.ts prints them, the unit tests feed it made-up rows.
 */
import type { Mode } from './load';
import { f, isGateway, kb, notQuiet, readable, servicePerEvent, type Row } from './report';
import type { ServerKind } from './server';

export type Status = 'PASS' | 'FAIL' | 'SKIP';

export interface Verdict {
  readonly status: Status;
  /** The issue that set the target. */
  readonly issue: 7 | 16;
  readonly name: string;
  /** The figures behind the verdict; what the target names but the run did not measure, after. */
  readonly text: string;
}

interface Check {
  readonly ok: boolean;
  readonly text: string;
}

function verdict(issue: 7 | 16, name: string, checks: readonly Check[], missing: readonly string[] = []): Verdict {
  const notMeasured = missing.length > 0 ? `${missing.join(', ')} not measured` : '';
  if (checks.length === 0) return { status: 'SKIP', issue, name, text: notMeasured || 'not measured in this run' };
  return {
    status: checks.every((c) => c.ok) ? 'PASS' : 'FAIL',
    issue,
    name,
    text: [...checks.map((c) => c.text), ...(notMeasured ? [notMeasured] : [])].join('; '),
  };
}

/** Per-user at the fixed rate of 1,000 events/s, the rate issue 16's latency targets name. */
const AT_1000 = (r: Row) => Math.abs(r.fixed.targetRate - 1000) < 1;

/** Beside a system figure whose baseline window was not quiet: the ratio is diluted by others' work. */
const quietNote = (raw: Row) =>
  notQuiet(raw)
    ? ` [NOT QUIET: raw's window saw ${readable(servicePerEvent(raw, (raw.services.postgres ?? 0) + (raw.services.redis ?? 0)))} µs/event on PostgreSQL and Redis, which it does not use]`
    : '';

const systemText = (r: Row) =>
  `${readable(r.systemPerEventUs)} = ${readable(r.cpuPerEventUs)} ${r.server} + ${readable(servicePerEvent(r, r.services.postgres))} PostgreSQL + ${readable(servicePerEvent(r, r.services.redis))} Redis`;

export function evaluateTargets(rows: readonly Row[]): Verdict[] {
  const gateway = (mode: Mode) => rows.filter((r) => r.scenario === mode && r.server === 'gateway');
  const base = (r: Row, kind: ServerKind) => rows.find((b) => b.scenario === r.scenario && b.c === r.c && b.server === kind);
  const perUser = gateway('per-user').sort((a, b) => a.c - b.c);
  const out: Verdict[] = [];

  // 1. System CPU per event, per-user, at C=1,000 and 5,000.
  {
    const checks: Check[] = [];
    const missing: string[] = [];
    for (const c of [1000, 5000]) {
      const r = perUser.find((g) => g.c === c);
      const raw = r && base(r, 'raw');
      if (!r || !raw) {
        missing.push(`C=${c}`);
        continue;
      }
      const x = r.systemPerEventUs / raw.systemPerEventUs;
      checks.push({ ok: x <= 2, text: `C=${c} ${f(x, 2)}x (${systemText(r)} vs ${systemText(raw)} µs)${quietNote(raw)}` });
    }
    out.push(verdict(16, 'per-user system CPU per event (gateway + PostgreSQL + Redis) <= 2x raw at C=1000 and 5000', checks, missing));
  }

  // 2. Per-user p99 at 1,000 events/s.
  {
    const checks: Check[] = [];
    const missing: string[] = [];
    for (const [c, limit] of [
      [5000, 50],
      [10_000, 100],
    ] as const) {
      const r = perUser.find((g) => g.c === c && AT_1000(g));
      if (!r) missing.push(`C=${c}`);
      else checks.push({ ok: r.fixed.p99 < limit, text: `C=${c} p99 ${readable(r.fixed.p99)} ms (< ${limit})` });
    }
    out.push(verdict(16, 'per-user p99 < 50 ms at C=5000 and < 100 ms at C=10000, at 1000 ev/s', checks, missing));
  }

  // 3. Max sustainable per-user rate at C=1,000 against raw's.
  {
    const r = perUser.find((g) => g.c === 1000 && g.search);
    const raw = r && base(r, 'raw');
    const checks: Check[] = [];
    if (r?.search && raw?.search) {
      const fixed = r.fixed.targetRate;
      const rateText = (x: Row) =>
        x.search?.maxSustainableRate == null
          ? `< ${fixed}/s`
          : `${x.search.maxSustainableRate}/s${x.search.steps.every((s) => s.ok) ? " (the search's ceiling)" : ''}`;
      const mine = r.search.maxSustainableRate;
      const theirs = raw.search.maxSustainableRate;
      // Unknown below the fixed rate: the gateway must at least hold it, whatever raw did.
      const ok = mine !== null && (theirs === null || mine >= theirs);
      checks.push({ ok, text: `gateway ${rateText(r)}, raw ${rateText(raw)}` });
    }
    out.push(
      verdict(
        16,
        "max sustainable per-user rate at C=1000 >= raw's (p99 <= 100 ms, nothing lost)",
        checks,
        checks.length ? [] : ['C=1000 search'],
      ),
    );
  }

  // 4. Fan-out system CPU per delivery.
  out.push(
    verdict(
      16,
      "fan-out system CPU per delivery <= 1.3x raw's",
      gateway('fan-out').flatMap((r) => {
        const raw = base(r, 'raw');
        if (!raw) return [];
        const x = r.systemPerDeliveryUs / raw.systemPerDeliveryUs;
        return [
          {
            ok: x <= 1.3,
            text:
              `C=${r.c} ${f(x, 2)}x (${f(r.systemPerDeliveryUs, 2)} vs ${f(raw.systemPerDeliveryUs, 2)} µs; ` +
              `the processes alone ${f(r.cpuPerDeliveryUs / raw.cpuPerDeliveryUs, 2)}x, ${f(r.cpuPerDeliveryUs, 2)} vs ${f(raw.cpuPerDeliveryUs, 2)})` +
              quietNote(raw),
          },
        ];
      }),
    ),
  );

  // 5. Heap per subscribed socket (issue 7's, repeated by issue 16).
  out.push(
    verdict(
      16,
      'heap per subscribed socket <= 2x raw',
      [...perUser, ...gateway('fan-out')].flatMap((r) => {
        const raw = base(r, 'raw');
        if (!raw) return [];
        const x = r.heapPerSocketBytes / raw.heapPerSocketBytes;
        return [
          { ok: x <= 2, text: `${r.scenario} C=${r.c} ${f(x, 2)}x (${kb(r.heapPerSocketBytes)} vs ${kb(raw.heapPerSocketBytes)} KB)` },
        ];
      }),
    ),
  );

  // 6. Correctness: every gateway row, the search's steps included (a step over capacity may
  // leave deliveries behind, not duplicate or misroute them).
  {
    const gatewayRows = rows.filter((r) => isGateway(r.server));
    const bad = gatewayRows.flatMap((r) => {
      const steps = r.search?.steps ?? [];
      const duplicated = r.fixed.duplicated + steps.reduce((n, s) => n + s.duplicated, 0);
      const misrouted = r.fixed.misrouted + steps.reduce((n, s) => n + s.misrouted, 0);
      return r.fixed.lost + duplicated + misrouted > 0
        ? [`${r.scenario} C=${r.c} ${r.server}: ${r.fixed.lost} lost, ${duplicated} duplicated, ${misrouted} misrouted`]
        : [];
    });
    const delivered = gatewayRows.reduce((n, r) => n + r.fixed.delivered, 0);
    out.push(
      verdict(
        16,
        '0 lost, duplicated or misrouted (gateway)',
        gatewayRows.length === 0
          ? []
          : [
              {
                ok: bad.length === 0,
                text: bad.length === 0 ? `${delivered} deliveries in ${gatewayRows.length} windows` : bad.join('; '),
              },
            ],
      ),
    );
  }

  // Issue 7's, not replaced by issue 16.
  out.push(
    verdict(
      7,
      'broadcast (one announcement to everyone, one Redis publish) CPU per delivery <= 1.5x raw fan-out',
      gateway('broadcast').flatMap((r) => {
        const raw = base(r, 'raw');
        if (!raw) return [];
        const x = r.cpuPerDeliveryUs / raw.cpuPerDeliveryUs;
        return [
          {
            ok: x <= 1.5,
            text:
              `C=${r.c} ${f(x, 2)}x (${f(r.cpuPerDeliveryUs, 2)} vs ${f(raw.cpuPerDeliveryUs, 2)} µs; ` +
              `system ${f(r.systemPerDeliveryUs / raw.systemPerDeliveryUs, 2)}x)`,
          },
        ];
      }),
    ),
  );
  const first = perUser[0];
  const last = perUser[perUser.length - 1];
  out.push(
    verdict(
      7,
      'per-user CPU per event roughly flat across C (largest C <= 1.5x smallest)',
      first && last && first !== last
        ? [
            {
              ok: last.cpuPerEventUs / first.cpuPerEventUs <= 1.5,
              text:
                perUser.map((r) => `C=${r.c} ${f(r.cpuPerEventUs, 1)} µs`).join(', ') +
                ` (${f(last.cpuPerEventUs / first.cpuPerEventUs, 2)}x)`,
            },
          ]
        : [],
    ),
  );
  return out;
}

export const formatVerdict = (v: Verdict): string => `${v.status.padEnd(4)}  [${v.issue}] ${v.name}: ${v.text}`;

/** The verdicts as the README's Markdown table. */
export function markdownTargets(verdicts: readonly Verdict[]): string {
  const cell = (s: string) => s.replace(/\|/g, '\\|');
  return [
    '| target (issue) | result |',
    '|:--|:--|',
    ...verdicts.map((v) => `| ${cell(v.name)} (${v.issue}) | **${v.status}**: ${cell(v.text)} |`),
  ].join('\n');
}

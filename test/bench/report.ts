/**
 * What one measured scenario x C x server gives (a `Row`, one JSON line in test/bench/results/),
 * and the printed report: the full table, the ratios to the baselines, and the compact Markdown
 * table the README and docs/benchmarks.md take as it is printed. Pure: no I/O.
 */
import type { Mode, PhaseResult } from './load';
import type { ServerKind } from './server';
import { sharedServicesUs, type ServicesCpu } from './system-cpu';

export interface SearchStep extends PhaseResult {
  readonly ok: boolean;
  /** The server's own CPU per event. */
  readonly cpuPerEventUs: number;
  /** The server's + PostgreSQL's + Redis's, per event. */
  readonly systemPerEventUs: number;
}

export interface Row {
  readonly scenario: Mode;
  readonly c: number;
  readonly server: ServerKind;
  readonly fixed: PhaseResult;
  /** The server process's CPU over the fixed-rate window (`process.cpuUsage()`), µs. */
  readonly cpuUs: number;
  readonly cpuPerDeliveryUs: number;
  readonly cpuPerEventUs: number;
  /** PostgreSQL's, Redis's and RabbitMQ's CPU over the same window (machine-wide deltas), µs. */
  readonly services: ServicesCpu;
  /** cpuUs + PostgreSQL + Redis: the event's cost to the machine, RabbitMQ apart. */
  readonly systemCpuUs: number;
  readonly systemPerDeliveryUs: number;
  readonly systemPerEventUs: number;
  readonly heapPerSocketBytes: number;
  readonly rssPerSocketBytes: number;
  readonly idle: { heapUsed: number; rss: number };
  readonly subscribed: { heapUsed: number; rss: number };
  readonly search?: { steps: SearchStep[]; maxSustainableRate: number | null };
  readonly problems: readonly string[];
  readonly profile?: string;
}

/** The product, whatever transport its clients use (the others are baselines). */
export const isGateway = (kind: ServerKind): boolean => kind === 'gateway' || kind === 'gateway-sse';

/** The system figures of a window: the server's CPU plus PostgreSQL's and Redis's. */
export function systemFigures(cpuUs: number, services: ServicesCpu, events: number, delivered: number) {
  const systemCpuUs = cpuUs + sharedServicesUs(services);
  return {
    systemCpuUs,
    systemPerEventUs: systemCpuUs / Math.max(1, events),
    systemPerDeliveryUs: systemCpuUs / Math.max(1, delivered),
  };
}

export const f = (n: number | undefined, digits = 1): string => (n !== undefined && Number.isFinite(n) ? n.toFixed(digits) : '-');
export const kb = (bytes: number): string => f(bytes / 1024, 2);
/** A service's µs per event ('-' when the service was not found on this machine). */
export const servicePerEvent = (r: Row, us: number | undefined): number | undefined =>
  us === undefined ? undefined : us / Math.max(1, r.fixed.events);

/** The search's result: the max sustainable rate, `+` when every step passed (the search's ceiling), `<fixed` when not even the fixed rate held. */
export function maxRateCell(r: Row): string {
  if (!r.search) return '';
  if (r.search.maxSustainableRate === null) return '<fixed';
  return `${r.search.maxSustainableRate}${r.search.steps.every((s) => s.ok) ? '+' : ''}`;
}

function render(head: readonly string[], body: readonly string[][], leftColumns: number): string {
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => (b[i] as string).length)));
  const line = (cells: readonly string[]) =>
    `| ${cells.map((c, i) => (i < leftColumns ? c.padEnd(widths[i] as number) : c.padStart(widths[i] as number))).join(' | ')} |`;
  return [
    line(head),
    `|${widths.map((w, i) => (i < leftColumns ? `:${'-'.repeat(w + 1)}` : `${'-'.repeat(w + 1)}:`)).join('|')}|`,
    ...body.map(line),
  ].join('\n');
}

const lostCell = (r: Row) => (r.fixed.late > 0 ? `${r.fixed.lost}+${r.fixed.late} late` : String(r.fixed.lost));

/** Every figure of every row (a Markdown table too, wide). */
export function table(rows: readonly Row[]): string {
  const head = [
    'scenario',
    'C',
    'server',
    'ev/s',
    'deliv/s',
    'p50 ms',
    'p99 ms',
    'max ms',
    'CPU µs/deliv',
    'CPU µs/event',
    'PG µs/event',
    'Redis µs/event',
    'system µs/event',
    'system µs/deliv',
    'RabbitMQ µs/event',
    'heap KB/sock',
    'RSS KB/sock',
    'lost',
    'dup',
    'max ev/s',
  ];
  const body = rows.map((r) => [
    r.scenario,
    String(r.c),
    r.server,
    f(r.fixed.publishRate, 0),
    f(r.fixed.deliveriesPerSec, 0),
    f(r.fixed.p50, 2),
    f(r.fixed.p99, 2),
    f(r.fixed.max, 1),
    f(r.cpuPerDeliveryUs, 2),
    f(r.cpuPerEventUs, 1),
    f(servicePerEvent(r, r.services.postgres), 1),
    f(servicePerEvent(r, r.services.redis), 1),
    f(r.systemPerEventUs, 1),
    f(r.systemPerDeliveryUs, 2),
    f(servicePerEvent(r, r.services.rabbitmq), 1),
    kb(r.heapPerSocketBytes),
    kb(r.rssPerSocketBytes),
    lostCell(r),
    String(r.fixed.duplicated + r.fixed.misrouted),
    maxRateCell(r),
  ]);
  return render(head, body, 3);
}

/** `12345.6` -> `12,346`, `52.21` -> `52.2`, `3.4` -> `3.40`: the docs' way of writing figures. */
export function readable(n: number | undefined): string {
  if (n === undefined || !Number.isFinite(n)) return '-';
  const abs = Math.abs(n);
  const digits = abs >= 100 ? 0 : abs >= 10 ? 1 : 2;
  return n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

const SERVER_LABEL: Record<ServerKind, string> = {
  gateway: 'gateway',
  'gateway-sse': 'gateway (SSE)',
  raw: 'raw `ws`',
  'graphql-ws': 'graphql-ws',
};

/**
 * The compact table for the README and docs/benchmarks.md, one group per scenario and C. CPU per
 * delivery (per-user: one delivery per event): the server's own, PostgreSQL's, Redis's, their sum
 * (system), and RabbitMQ's apart.
 */
export function markdownTable(rows: readonly Row[]): string {
  const head = [
    'scenario',
    'C',
    'server',
    'deliv/s',
    'p50 ms',
    'p99 ms',
    'server µs/deliv',
    'PostgreSQL',
    'Redis',
    'system µs/deliv',
    'RabbitMQ',
    'heap KB/sock',
    'lost',
    'dup',
    'max ev/s',
  ];
  const perDelivery = (r: Row, us: number | undefined) => (us === undefined ? undefined : us / Math.max(1, r.fixed.delivered));
  let previous = '';
  const body = rows.map((r) => {
    const group = `${r.scenario} @${r.fixed.targetRate} ev/s|${r.c}`;
    const first = group !== previous;
    previous = group;
    return [
      first ? `${r.scenario} @${r.fixed.targetRate.toLocaleString('en-US')} ev/s` : '',
      first ? r.c.toLocaleString('en-US') : '',
      SERVER_LABEL[r.server],
      readable(r.fixed.deliveriesPerSec),
      readable(r.fixed.p50),
      readable(r.fixed.p99),
      readable(r.cpuPerDeliveryUs),
      readable(perDelivery(r, r.services.postgres)),
      readable(perDelivery(r, r.services.redis)),
      `**${readable(r.systemPerDeliveryUs)}**`,
      readable(perDelivery(r, r.services.rabbitmq)),
      f(r.heapPerSocketBytes / 1024, 2),
      lostCell(r),
      String(r.fixed.duplicated + r.fixed.misrouted),
      maxRateCell(r),
    ];
  });
  return render(head, body, 3);
}

/** Gateway against each baseline (and over SSE against over graphql-ws), per scenario and C. */
export function ratios(rows: readonly Row[]): string[] {
  const lines: string[] = [];
  const groups = new Map<string, Row[]>();
  for (const r of rows) groups.set(`${r.scenario} C=${r.c}`, [...(groups.get(`${r.scenario} C=${r.c}`) ?? []), r]);
  for (const [key, group] of groups) {
    const gw = group.find((r) => r.server === 'gateway');
    const overSse = group.find((r) => r.server === 'gateway-sse');
    if (gw && overSse) {
      lines.push(
        `${key.padEnd(18)} gateway-sse/gateway CPU/delivery ${f(overSse.cpuPerDeliveryUs / gw.cpuPerDeliveryUs, 2)}x  ` +
          `system ${f(overSse.systemPerDeliveryUs / gw.systemPerDeliveryUs, 2)}x  ` +
          `heap/socket ${f(overSse.heapPerSocketBytes / gw.heapPerSocketBytes, 2)}x  p99 ${f(overSse.fixed.p99 / gw.fixed.p99, 2)}x`,
      );
    }
    if (!gw) continue;
    for (const base of group.filter((r) => !isGateway(r.server))) {
      lines.push(
        `${key.padEnd(18)} gateway/${base.server.padEnd(10)} CPU/delivery ${f(gw.cpuPerDeliveryUs / base.cpuPerDeliveryUs, 2)}x  ` +
          `system ${f(gw.systemPerDeliveryUs / base.systemPerDeliveryUs, 2)}x  ` +
          `heap/socket ${f(gw.heapPerSocketBytes / base.heapPerSocketBytes, 2)}x  p99 ${f(gw.fixed.p99 / base.fixed.p99, 2)}x`,
      );
    }
  }
  return lines;
}

/**
 * A baseline's window in which PostgreSQL and Redis, which it does not use, spent more than a
 * tenth of the baseline's own CPU: others were using them, and every system figure of the run
 * carries that noise.
 */
export const notQuiet = (baseline: Row): boolean => sharedServicesUs(baseline.services) > 0.1 * baseline.cpuUs;

/**
 * PostgreSQL's and Redis's CPU while a baseline ran: the baselines use neither, so this is what
 * the machine did besides (other sessions, background writers). Shown beside the gateway's rows,
 * and flagged when it is more than a tenth of the baseline's own CPU: the run was not quiet.
 */
export function background(rows: readonly Row[]): string[] {
  const baselines = rows.filter((r) => !isGateway(r.server));
  if (baselines.length === 0) return [];
  const lines = baselines.map((r) => {
    const shared = sharedServicesUs(r.services);
    const noisy = notQuiet(r);
    return (
      `  ${`${r.scenario} C=${r.c} ${r.server}`.padEnd(30)} PostgreSQL ${f(servicePerEvent(r, r.services.postgres), 1)} ` +
      `Redis ${f(servicePerEvent(r, r.services.redis), 1)} µs/event (${f((100 * shared) / Math.max(1, r.cpuUs), 1)}% of its own CPU)` +
      (noisy ? '  NOT QUIET: other work on PostgreSQL/Redis during this window' : '')
    );
  });
  return ['PostgreSQL and Redis while the baselines ran (they use neither: the machine-wide background):', ...lines];
}

/** Where the gateway's PostgreSQL figure went: its own database's backends, and the rest (background processes, exited backends, anyone else). */
export function postgresDetail(rows: readonly Row[]): string[] {
  const lines = rows
    .filter((r) => isGateway(r.server) && r.services.postgres !== undefined && r.services.postgresBench !== undefined)
    .map((r) => {
      const total = r.services.postgres as number;
      const own = r.services.postgresBench as number;
      return (
        `  ${`${r.scenario} C=${r.c} ${r.server}`.padEnd(30)} ${f(total / Math.max(1, r.fixed.events), 1)} µs/event: ` +
        `${f(own / Math.max(1, r.fixed.events), 1)} in its database's backends, ${f((total - own) / Math.max(1, r.fixed.events), 1)} elsewhere`
      );
    });
  return lines.length > 0 ? ["The gateway's PostgreSQL CPU (machine-wide) by where it was spent:", ...lines] : [];
}

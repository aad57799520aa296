/**
 * The CPU the services the gateway leans on spend during a measured window: PostgreSQL and
 * RabbitMQ from /proc (every process whose `comm` is `postgres`, `beam.smp`), Redis from its own
 * `INFO cpu`. They share this machine's two cores with the server under test, so an event's cost
 * to the machine is the server's CPU plus theirs (docs/benchmarks.md, docs/decisions/0603).
 *
 * Machine-wide deltas: whatever else uses these services during the window (another engineer's
 * tests) is counted too; the baselines, which use neither PostgreSQL nor Redis, show that noise.
 * The pure parts (parseProcStat, parseRedisCpu, delta) are unit-tested; the sampler reads the
 * machine.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

/** The fields of /proc/<pid>/stat the bench needs, times in clock ticks. */
export interface ProcStat {
  readonly pid: number;
  readonly comm: string;
  readonly ppid: number;
  readonly utime: number;
  readonly stime: number;
  /** CPU of this process's children it waited for (a postmaster's exited backends). */
  readonly cutime: number;
  readonly cstime: number;
}

/**
 * Parses one /proc/<pid>/stat line (proc(5)). `comm` is between the first `(` and the LAST `)`:
 * it may itself hold spaces and parentheses. Undefined when the line is not one.
 */
export function parseProcStat(line: string): ProcStat | undefined {
  const open = line.indexOf('(');
  const close = line.lastIndexOf(')');
  if (open < 1 || close < open) return undefined;
  const pid = Number(line.slice(0, open).trim());
  // Field 3 (state) onwards; field n is rest[n - 3].
  const rest = line
    .slice(close + 1)
    .trim()
    .split(/\s+/);
  if (!Number.isInteger(pid) || rest.length < 15) return undefined;
  const field = (n: number) => Number(rest[n - 3]);
  const stat = {
    pid,
    comm: line.slice(open + 1, close),
    ppid: field(4),
    utime: field(14),
    stime: field(15),
    cutime: field(16),
    cstime: field(17),
  };
  return [stat.ppid, stat.utime, stat.stime, stat.cutime, stat.cstime].every(Number.isFinite) ? stat : undefined;
}

/**
 * A process's CPU including the children it reaped: a backend that exits inside the window moves
 * its time to the postmaster's cutime/cstime, so the sum over a service's processes loses nothing.
 */
export const ticksOf = (s: ProcStat): number => s.utime + s.stime + s.cutime + s.cstime;

/** Redis's own CPU from `INFO cpu`, in µs: main process (all its threads) plus reaped children (RDB/AOF forks). */
export function parseRedisCpu(info: string): number | undefined {
  const values = new Map<string, number>();
  for (const line of info.split(/\r?\n/)) {
    const m = /^(used_cpu_(?:sys|user)(?:_children)?):([0-9.]+)\s*$/.exec(line);
    if (m) values.set(m[1] as string, Number(m[2]));
  }
  const sys = values.get('used_cpu_sys');
  const user = values.get('used_cpu_user');
  if (sys === undefined || user === undefined) return undefined;
  const seconds = sys + user + (values.get('used_cpu_sys_children') ?? 0) + (values.get('used_cpu_user_children') ?? 0);
  return Math.round(seconds * 1e6);
}

/** One reading of the services, µs of CPU since they started (undefined: not found on this machine). */
export interface ServicesSample {
  readonly postgres?: number;
  /** The backends of the databases the bench named (pids from pg_stat_activity), alive at this reading. */
  readonly postgresBackends?: ReadonlyMap<number, number>;
  readonly redis?: number;
  readonly rabbitmq?: number;
}

/** µs each service spent between two readings; undefined where either reading lacked it. */
export interface ServicesCpu {
  readonly postgres?: number;
  /**
   * Of `postgres`, the bench databases' backends that lived through the window (informative: what
   * is left is PostgreSQL's background processes, exited backends and anyone else's sessions).
   */
  readonly postgresBench?: number;
  readonly redis?: number;
  readonly rabbitmq?: number;
}

export function delta(before: ServicesSample, after: ServicesSample): ServicesCpu {
  const d = (a?: number, b?: number) => (a === undefined || b === undefined ? undefined : Math.max(0, b - a));
  let postgresBench: number | undefined;
  if (before.postgresBackends && after.postgresBackends) {
    postgresBench = 0;
    for (const [pid, us] of after.postgresBackends) {
      const was = before.postgresBackends.get(pid);
      if (was !== undefined) postgresBench += Math.max(0, us - was);
    }
  }
  return {
    postgres: d(before.postgres, after.postgres),
    postgresBench,
    redis: d(before.redis, after.redis),
    rabbitmq: d(before.rabbitmq, after.rabbitmq),
  };
}

/** PostgreSQL + Redis: what the "system CPU" sums beside the server's own (RabbitMQ is shown apart). */
export const sharedServicesUs = (s: ServicesCpu | undefined): number => (s?.postgres ?? 0) + (s?.redis ?? 0);

let tickUs: number | undefined;
/** µs per clock tick (`getconf CLK_TCK`, 100 on every Linux the bench met). */
function microsPerTick(): number {
  if (tickUs === undefined) {
    const r = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
    const hz = Number(r.stdout?.trim());
    tickUs = 1e6 / (Number.isInteger(hz) && hz > 0 ? hz : 100);
  }
  return tickUs;
}

/** Every process on the machine whose comm is one of `comms` (bounded: at most 100,000 entries). */
export function readProcs(comms: ReadonlySet<string>, procDir = '/proc'): ProcStat[] {
  const out: ProcStat[] = [];
  let entries: string[];
  try {
    entries = readdirSync(procDir);
  } catch {
    return out;
  }
  for (const name of entries.slice(0, 100_000)) {
    if (!/^\d+$/.test(name)) continue;
    let line: string;
    try {
      line = readFileSync(`${procDir}/${name}/stat`, 'utf8');
    } catch {
      continue; // exited between readdir and read
    }
    const stat = parseProcStat(line);
    if (stat && comms.has(stat.comm)) out.push(stat);
  }
  return out;
}

const POSTGRES = new Set(['postgres']);
const RABBITMQ = new Set(['beam.smp']);
const BOTH = new Set([...POSTGRES, ...RABBITMQ]);

export interface SamplerDeps {
  /** Redis `INFO cpu` (undefined: no Redis to ask). */
  readonly redisInfo?: () => Promise<string>;
  /** Pids of the client backends connected to `databases` (pg_stat_activity). */
  readonly backendPids?: (databases: readonly string[]) => Promise<number[]>;
  /** Where /proc is (tests give a made-up one). */
  readonly procDir?: string;
}

/**
 * Reads the services. Order matters for the sampler's own cost: at a window's start the queries
 * (pg_stat_activity, INFO) run before /proc is read, at its end after, so neither is counted.
 */
export class ServicesSampler {
  constructor(private readonly deps: SamplerDeps) {}

  async sample(position: 'start' | 'end', databases: readonly string[] = []): Promise<ServicesSample> {
    let pids: number[] | undefined;
    let redis: number | undefined;
    const queries = async () => {
      if (databases.length > 0 && this.deps.backendPids) pids = await this.deps.backendPids(databases).catch(() => undefined);
      if (this.deps.redisInfo) redis = parseRedisCpu(await this.deps.redisInfo().catch(() => ''));
    };
    if (position === 'start') await queries();
    const procs = readProcs(BOTH, this.deps.procDir);
    if (position === 'end') await queries();
    const us = microsPerTick();
    const sum = (comms: ReadonlySet<string>) => {
      const of = procs.filter((p) => comms.has(p.comm));
      return of.length === 0 ? undefined : of.reduce((total, p) => total + ticksOf(p), 0) * us;
    };
    let postgresBackends: Map<number, number> | undefined;
    if (pids) {
      postgresBackends = new Map();
      const wanted = new Set(pids);
      for (const p of procs) if (p.comm === 'postgres' && wanted.has(p.pid)) postgresBackends.set(p.pid, (p.utime + p.stime) * us);
    }
    return { postgres: sum(POSTGRES), postgresBackends, redis, rabbitmq: sum(RABBITMQ) };
  }
}

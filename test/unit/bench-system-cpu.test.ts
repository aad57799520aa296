/** The bench's reading of PostgreSQL's, Redis's and RabbitMQ's CPU: /proc/<pid>/stat, INFO cpu, deltas (a made-up /proc). */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { delta, parseProcStat, parseRedisCpu, readProcs, ServicesSampler, sharedServicesUs, ticksOf } from '../bench/system-cpu';

/** A /proc/<pid>/stat line as Linux writes it (proc(5)): 52 fields, times in clock ticks. */
function statLine(pid: number, comm: string, ppid: number, utime: number, stime: number, cutime = 0, cstime = 0): string {
  const after = [
    'S', // 3 state
    ppid, // 4
    pid, // 5 pgrp
    pid, // 6 session
    0, // 7 tty_nr
    -1, // 8 tpgid
    4194304, // 9 flags
    4482, // 10 minflt
    84086, // 11 cminflt
    0, // 12 majflt
    15, // 13 cmajflt
    utime, // 14
    stime, // 15
    cutime, // 16
    cstime, // 17
    20, // 18 priority
    0, // 19 nice
    1, // 20 num_threads
    ...Array.from({ length: 32 }, (_, i) => i), // 21..52
  ];
  return `${pid} (${comm}) ${after.join(' ')}\n`;
}

describe('parseProcStat', () => {
  it('reads pid, comm, ppid and the four CPU times', () => {
    expect(parseProcStat(statLine(2222, 'postgres', 1, 3, 4, 1612, 219))).toEqual({
      pid: 2222,
      comm: 'postgres',
      ppid: 1,
      utime: 3,
      stime: 4,
      cutime: 1612,
      cstime: 219,
    });
  });

  it('takes comm up to the last parenthesis, spaces and parentheses inside included', () => {
    const stat = parseProcStat(statLine(7, 'a) b (c', 2, 10, 20, 30, 40));
    expect(stat?.comm).toBe('a) b (c');
    expect(stat && ticksOf(stat)).toBe(100);
  });

  it('is undefined for what is not a stat line', () => {
    expect(parseProcStat('')).toBeUndefined();
    expect(parseProcStat('12 (short) S 1 2 3')).toBeUndefined();
    expect(parseProcStat('x (postgres) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15')).toBeUndefined();
  });
});

describe('parseRedisCpu', () => {
  const info = [
    '# CPU',
    'used_cpu_sys:0.487649',
    'used_cpu_user:0.656643',
    'used_cpu_sys_children:0.010000',
    'used_cpu_user_children:0.002000',
    'used_cpu_sys_main_thread:0.487452',
    'used_cpu_user_main_thread:0.656378',
    '',
  ].join('\r\n');

  it('sums system and user, reaped children included, in µs (the main-thread lines are a subset, not added)', () => {
    expect(parseRedisCpu(info)).toBe(487_649 + 656_643 + 10_000 + 2_000);
  });

  it('reads a Redis without the children lines', () => {
    expect(parseRedisCpu('used_cpu_sys:1.5\nused_cpu_user:0.25\n')).toBe(1_750_000);
  });

  it('is undefined without both main figures', () => {
    expect(parseRedisCpu('')).toBeUndefined();
    expect(parseRedisCpu('used_cpu_sys:1.0\n')).toBeUndefined();
  });
});

describe('delta', () => {
  it('subtracts each service, undefined where a reading lacked it, never negative', () => {
    expect(delta({ postgres: 100, redis: 50, rabbitmq: 10 }, { postgres: 350, redis: 40, rabbitmq: undefined })).toEqual({
      postgres: 250,
      postgresBench: undefined,
      redis: 0,
      rabbitmq: undefined,
    });
  });

  it("counts the bench databases' backends that lived through the window only", () => {
    const before = {
      postgres: 0,
      postgresBackends: new Map([
        [10, 100],
        [11, 200],
      ]),
    };
    const after = {
      postgres: 0,
      postgresBackends: new Map([
        [10, 400],
        [12, 900],
      ]),
    };
    // 10: 300 more; 11 exited (its time is the postmaster's now); 12 started inside: not known from when.
    expect(delta(before, after).postgresBench).toBe(300);
  });

  it('system adds PostgreSQL and Redis, not RabbitMQ, a missing service as 0', () => {
    expect(sharedServicesUs({ postgres: 30, redis: 12, rabbitmq: 1000 })).toBe(42);
    expect(sharedServicesUs({ redis: 12 })).toBe(12);
    expect(sharedServicesUs(undefined)).toBe(0);
  });
});

describe('readProcs and ServicesSampler on a made-up /proc', () => {
  let proc: string;
  const write = (pid: number, line: string) => {
    mkdirSync(path.join(proc, String(pid)), { recursive: true });
    writeFileSync(path.join(proc, String(pid), 'stat'), line);
  };

  beforeEach(() => {
    proc = mkdtempSync(path.join(os.tmpdir(), 'bench-proc-'));
    mkdirSync(path.join(proc, 'self'));
    writeFileSync(path.join(proc, 'uptime'), '1.0 1.0\n');
    write(1, statLine(1, 'init', 0, 5, 5));
    write(100, statLine(100, 'postgres', 1, 1, 1, 10, 0)); // the postmaster
    write(101, statLine(101, 'postgres', 100, 20, 5)); // a backend of the bench database
    write(102, statLine(102, 'postgres', 100, 7, 3)); // a backend that will exit
    write(200, statLine(200, 'beam.smp', 1, 300, 100));
    write(300, statLine(300, 'node', 1, 1000, 1000));
    mkdirSync(path.join(proc, '400')); // a process gone between readdir and read
  });

  afterEach(() => rmSync(proc, { recursive: true, force: true }));

  it('finds the processes by comm, skipping what is not a pid or has vanished', () => {
    expect(
      readProcs(new Set(['postgres']), proc)
        .map((p) => p.pid)
        .sort(),
    ).toEqual([100, 101, 102]);
    expect(readProcs(new Set(['postgres']), path.join(proc, 'missing'))).toEqual([]);
  });

  it("keeps an exited backend's CPU (the postmaster's cutime), reads Redis from INFO, and queries outside the window", async () => {
    const calls: string[] = [];
    let redisSeconds = 1.0;
    // The queries' own cost: at the start it lands before /proc is read, at the end after.
    let queryCost: () => void = () => undefined;
    const sampler = new ServicesSampler({
      procDir: proc,
      redisInfo: async () => {
        calls.push('info');
        queryCost();
        return `used_cpu_sys:${redisSeconds}\nused_cpu_user:0\n`;
      },
      backendPids: async (databases) => {
        calls.push(`pids ${databases.join(',')}`);
        return [101];
      },
    });
    queryCost = () => write(100, statLine(100, 'postgres', 1, 1, 1, 10 + 1000, 0));
    const before = await sampler.sample('start', ['bench_1']);
    expect(calls).toEqual(['pids bench_1', 'info']);
    // Inside the window: backend 101 works 40 more ticks, 102 works 5 more and exits (its 15 to the postmaster).
    write(101, statLine(101, 'postgres', 100, 50, 15));
    rmSync(path.join(proc, '102'), { recursive: true });
    write(100, statLine(100, 'postgres', 1, 1, 1, 10 + 1000 + 15, 0));
    write(200, statLine(200, 'beam.smp', 1, 350, 110));
    redisSeconds = 1.25;
    queryCost = () => write(200, statLine(200, 'beam.smp', 1, 350 + 1000, 110));
    const after = await sampler.sample('end', ['bench_1']);
    const cpu = delta(before, after);
    const tick = 10_000; // µs at CLK_TCK 100
    expect(cpu.postgres).toBe((40 + 5) * tick);
    expect(cpu.postgresBench).toBe(40 * tick);
    expect(cpu.rabbitmq).toBe(60 * tick);
    expect(cpu.redis).toBe(250_000);
  });

  it('leaves a service undefined when none of its processes exist', async () => {
    rmSync(path.join(proc, '200'), { recursive: true });
    const sample = await new ServicesSampler({ procDir: proc }).sample('start');
    expect(sample.rabbitmq).toBeUndefined();
    expect(sample.redis).toBeUndefined();
    expect(sample.postgres).toBe((2 + 10 + 25 + 10) * 10_000);
  });
});

/**
 * A small .cpuprofile summarizer: self time per function (name + file:line), the top N, the self
 * time per package (node_modules/<name>, the gateway's own dist/, node internals), and the
 * gateway's own functions by inclusive time, so the hot path's owner is visible at a glance. Usable alone: node profile.js <file.cpuprofile> [N].
 */
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

export interface ProfileRow {
  readonly name: string;
  readonly where: string;
  readonly selfMs: number;
  readonly percent: number;
}

/** Which package a script belongs to: `node_modules/<pkg>`, the gateway's `dist/...` directory, or node. */
function owner(url: string): string {
  if (!url) return '(native/vm)';
  const nm = url.lastIndexOf('node_modules/');
  if (nm >= 0) {
    const rest = url.slice(nm + 'node_modules/'.length).split('/');
    return rest[0]?.startsWith('@') ? `${rest[0]}/${rest[1]}` : (rest[0] ?? url);
  }
  if (url.startsWith('node:')) return 'node';
  const dist = url.indexOf('/dist/');
  if (dist >= 0)
    return `gateway ${url
      .slice(dist + 1)
      .split('/')
      .slice(0, 2)
      .join('/')}`;
  return url.replace(/^file:\/\//, '');
}

function shortUrl(url: string): string {
  const nm = url.lastIndexOf('node_modules/');
  if (nm >= 0) return url.slice(nm + 'node_modules/'.length);
  const dist = url.indexOf('/dist/');
  if (dist >= 0) return url.slice(dist + 1);
  return url.replace(/^file:\/\//, '');
}

export function summarize(
  file: string,
  top = 25,
): { totalMs: number; busyMs: number; functions: ProfileRow[]; packages: ProfileRow[]; gatewayInclusive: ProfileRow[] } {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  // A sample's time is the delta to the next sample (the last one gets the profile's end).
  for (let i = 0; i < profile.samples.length; i++) {
    const next = i + 1 < profile.timeDeltas.length ? (profile.timeDeltas[i + 1] as number) : 0;
    const id = profile.samples[i] as number;
    selfUs.set(id, (selfUs.get(id) ?? 0) + Math.max(0, next));
  }
  let totalUs = 0;
  const fns = new Map<string, { name: string; where: string; us: number }>();
  const pkgs = new Map<string, number>();
  for (const [id, us] of selfUs) {
    const node = byId.get(id);
    if (!node) continue;
    totalUs += us;
    const { functionName, url, lineNumber } = node.callFrame;
    const name = functionName || '(anonymous)';
    const where = url ? `${shortUrl(url)}:${lineNumber + 1}` : '';
    const key = `${name}\u0000${where}`;
    const row = fns.get(key) ?? { name, where, us: 0 };
    row.us += us;
    fns.set(key, row);
    const pkg = url ? owner(url) : name.startsWith('(') ? name : '(native/vm)';
    pkgs.set(pkg, (pkgs.get(pkg) ?? 0) + us);
  }
  // Self time says which library burns the CPU; the gateway's own frames above it (inclusive
  // time) say which of our calls led there, e.g. the read model's apply or a socket send.
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const child of n.children ?? []) parent.set(child, n.id);
  const inclusive = new Map<string, { name: string; where: string; us: number }>();
  for (const [id, us] of selfUs) {
    const keys = new Set<string>();
    for (let at: number | undefined = id, depth = 0; at !== undefined && depth < 500; at = parent.get(at), depth++) {
      const node = byId.get(at);
      if (!node || !/\/dist\//.test(node.callFrame.url) || node.callFrame.url.includes('node_modules/')) continue;
      const name = node.callFrame.functionName || '(anonymous)';
      const where = `${shortUrl(node.callFrame.url)}:${node.callFrame.lineNumber + 1}`;
      const key = `${name}\u0000${where}`;
      if (keys.has(key)) continue;
      keys.add(key);
      const row = inclusive.get(key) ?? { name, where, us: 0 };
      row.us += us;
      inclusive.set(key, row);
    }
  }
  // Percentages of busy time: an unsaturated server's idle samples would otherwise dilute them.
  let idleUs = 0;
  for (const [id, us] of selfUs) if (byId.get(id)?.callFrame.functionName === '(idle)') idleUs += us;
  const busyUs = totalUs - idleUs;
  const pct = (us: number) => (busyUs > 0 ? (100 * us) / busyUs : 0);
  const functions = [...fns.values()]
    .filter((r) => r.name !== '(idle)')
    .sort((a, b) => b.us - a.us)
    .slice(0, top)
    .map((r) => ({ name: r.name, where: r.where, selfMs: r.us / 1000, percent: pct(r.us) }));
  const packages = [...pkgs.entries()]
    .filter(([name]) => name !== '(idle)')
    .sort((a, b) => b[1] - a[1])
    .slice(0, 15)
    .map(([name, us]) => ({ name, where: '', selfMs: us / 1000, percent: pct(us) }));
  const gatewayInclusive = [...inclusive.values()]
    .sort((a, b) => b.us - a.us)
    .slice(0, 15)
    .map((r) => ({ name: r.name, where: r.where, selfMs: r.us / 1000, percent: pct(r.us) }));
  return { totalMs: totalUs / 1000, busyMs: busyUs / 1000, functions, packages, gatewayInclusive };
}

export function formatSummary(file: string, top = 25): string {
  const { totalMs, busyMs, functions, packages, gatewayInclusive } = summarize(file, top);
  const lines = [
    `CPU profile ${file}: ${totalMs.toFixed(0)} ms sampled, ${busyMs.toFixed(0)} ms busy (percentages are of busy time)`,
    `  self ms      %  function  (where)`,
  ];
  for (const f of functions) lines.push(`  ${f.selfMs.toFixed(1).padStart(7)} ${f.percent.toFixed(1).padStart(6)}  ${f.name}  ${f.where}`);
  lines.push(`  by package:`);
  for (const p of packages) lines.push(`  ${p.selfMs.toFixed(1).padStart(7)} ${p.percent.toFixed(1).padStart(6)}  ${p.name}`);
  lines.push(`  gateway functions (dist/) by total time, synchronous callees included (work after an await is not counted to its caller):`);
  for (const g of gatewayInclusive)
    lines.push(`  ${g.selfMs.toFixed(1).padStart(7)} ${g.percent.toFixed(1).padStart(6)}  ${g.name}  ${g.where}`);
  return lines.join('\n');
}

if (require.main === module) {
  const [file, n] = process.argv.slice(2);
  if (!file) {
    process.stderr.write('usage: node profile.js <file.cpuprofile> [top]\n');
    process.exitCode = 64;
  } else {
    process.stdout.write(`${formatSummary(file, n ? Number(n) : 25)}\n`);
  }
}

/**
 * Payload execution alone (docs/decisions/0602): CPU per event of producing one pushed payload,
 * graphql-js `execute` (+ JSON.stringify, the fallback) against the graphql-jit compiled form
 * (+ JSON.stringify), through SharedExecution as the delivery path calls it, for the device and
 * quota subscriptions' typical selections: the bench clients' (./events.ts) and the frontend
 * client's operations with their fragments (packages/client/operations), on events as the
 * bridge normalizes them, with the entity the read model attaches for the latter.
 *
 *   npx tsc -p test --noEmit false --outDir .tmp/payload && node .tmp/payload/test/bench/payload-execution.js [N=20000] [ROUNDS=5]
 *
 * Prints, per selection, a JSON line with the median over ROUNDS of µs per event for each path,
 * the ratio and whether the two paths' texts were byte-identical for every event measured, and
 * a line with the pieces alone (execute, the compiled function, JSON.stringify); then a line on
 * graphql-jit's fast-json-stringify mode.
 */
import 'reflect-metadata';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { execute, parse, type DocumentNode, type ExecutionArgs, type ExecutionResult, type GraphQLSchema } from 'graphql';
import { compileQuery, isCompiledQuery } from 'graphql-jit';
import { normalizeMessage, withOwner, type IncomingMessage } from '../../src/contracts/events';
import { unconditional } from '../../src/graphql/compiled-execution';
import { eventSchema, SharedExecution } from '../../src/graphql/push-delivery';
import { createSchema } from '../../src/schema';
import { DEVICE_DOCUMENT, deviceMessage, QUOTA_DOCUMENT, quotaMessage } from './events';

const N = Number(process.argv[2] ?? 20_000);
const ROUNDS = Number(process.argv[3] ?? 5);
const at = '2026-11-25T00:00:00.000Z';

/** The frontend client's operations: found from here upwards (the source tree or its tsc output). */
function operations(): string {
  for (let dir = __dirname; dir !== path.dirname(dir); dir = path.dirname(dir)) {
    const operationsDir = path.join(dir, 'packages/client/operations');
    if (existsSync(operationsDir)) {
      return ['subscriptions.graphql', 'fragments.graphql'].map((file) => readFileSync(path.join(operationsDir, file), 'utf8')).join('\n');
    }
  }
  throw new Error('packages/client/operations not found');
}

function normalized(message: { routingKey: string; body: unknown }, userId: string): object {
  const incoming: IncomingMessage = { routingKey: message.routingKey, body: Buffer.from(JSON.stringify(message.body)), messageId: 'm' };
  const draft = normalizeMessage(incoming, 262_144)?.drafts[0];
  if (!draft) throw new Error(`${message.routingKey}: not normalized`);
  // As subscribers receive it: through Redis, as JSON.
  return JSON.parse(JSON.stringify(withOwner(draft, userId))) as object;
}

const quotaEntity = (userId: string, n: number) => ({
  id: `quota-${userId}`,
  userId,
  planId: 'basic',
  status: 'ACTIVE',
  limits: { maxDevices: 10, totalCpuCores: 40, totalMemoryGB: 64 },
  usage: { currentDevices: n % 10, usedCpuCores: (n % 10) * 4, usedMemoryGB: (n % 10) * 6.4 },
  validFrom: at,
  validUntil: null,
  autoRenew: true,
  version: n,
  updatedAt: at,
});
const deviceEntity = (userId: string, n: number) => ({
  id: `device-${userId}`,
  userId,
  name: `phone ${userId}`,
  status: n % 2 ? 'RUNNING' : 'STOPPED',
  providerType: 'REDROID',
  cpuCores: 4,
  memoryMB: 4096,
  storageGB: 32,
  statusReason: 'bench',
  version: n,
  createdAt: at,
  updatedAt: at,
});

interface Case {
  name: string;
  document: DocumentNode;
  operationName?: string;
  variableValues: Record<string, unknown>;
  event: (i: number) => object;
}

function cases(): Case[] {
  const client = parse(operations());
  const quota = (i: number) => normalized(quotaMessage(`e${i}`, `user-${i % 1000}`, i), `user-${i % 1000}`);
  const device = (i: number) => normalized(deviceMessage(`e${i}`, `user-${i % 1000}`, i), `user-${i % 1000}`);
  return [
    { name: 'quota (bench selection)', document: parse(QUOTA_DOCUMENT), variableValues: {}, event: quota },
    { name: 'device (bench selection)', document: parse(DEVICE_DOCUMENT), variableValues: {}, event: device },
    {
      name: 'quota (client QuotaChanged + QuotaFields, with entity)',
      document: client,
      operationName: 'QuotaChanged',
      variableValues: { after: 'e0' },
      event: (i) => ({ ...quota(i), quota: quotaEntity(`user-${i % 1000}`, i) }),
    },
    {
      name: 'device (client DeviceStatusChanged + DeviceFields, with entity)',
      document: client,
      operationName: 'DeviceStatusChanged',
      variableValues: { after: 'e0' },
      event: (i) => ({ ...device(i), device: deviceEntity(`user-${i % 1000}`, i) }),
    },
  ];
}

/** CPU µs per event of `payload` over fresh events (the payload cache is per event object). */
function measure(execution: SharedExecution, args: ExecutionArgs, events: readonly object[]): { us: number; texts: string[] } {
  const key = execution.selectionKey(args);
  const texts = new Array<string>(events.length);
  const start = process.cpuUsage();
  for (let i = 0; i < events.length; i++) texts[i] = execution.payload(events[i] as object, key, args);
  const used = process.cpuUsage(start);
  return { us: (used.user + used.system) / events.length, texts };
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] as number;

/** CPU µs per call of `fn` over `inputs`. */
function perCall<T>(inputs: readonly T[], fn: (input: T) => unknown): number {
  const start = process.cpuUsage();
  for (const input of inputs) fn(input);
  const used = process.cpuUsage(start);
  return (used.user + used.system) / inputs.length;
}

/**
 * The pieces alone, on the event schema: graphql-js `execute`, the compiled function, and each
 * way of serializing its result: JSON.stringify, and graphql-jit's fast-json-stringify mode,
 * which compiles only where no custom scalar is selected (every event has a DateTime): measured
 * on the device bench selection without occurredAt, with whether its text is JSON.stringify's.
 */
function pieces(schema: GraphQLSchema, c: Case, events: readonly object[]): Record<string, unknown> {
  const events2 = eventSchema(schema);
  const compile = () => {
    const document = unconditional(events2, c.document, c.operationName, c.variableValues);
    return document && compileQuery(events2, document, c.operationName);
  };
  for (let i = 0; i < 20; i++) compile();
  const compileUs = perCall(Array.from({ length: 200 }), compile);
  const compiled = compile();
  if (!compiled || !isCompiledQuery(compiled)) throw new Error(`${c.name}: not compiled`);
  const run = (event: object) => compiled.query(event, {}, c.variableValues) as ExecutionResult;
  const interpret = (event: object) =>
    execute({ schema: events2, document: c.document, operationName: c.operationName, variableValues: c.variableValues, rootValue: event });
  for (let i = 0; i < 3; i++) {
    perCall(events, interpret);
    perCall(events, run);
  }
  const results = events.map(run);
  const rounds = Array.from({ length: ROUNDS }, () => ({
    execute: perCall(events, interpret),
    compiled: perCall(events, run),
    stringify: perCall(results, (result) => JSON.stringify(result)),
  }));
  return {
    selection: c.name,
    compileUs: Math.round(compileUs),
    executeAloneUs: Number(median(rounds.map((r) => r.execute)).toFixed(2)),
    compiledAloneUs: Number(median(rounds.map((r) => r.compiled)).toFixed(2)),
    jsonStringifyUs: Number(median(rounds.map((r) => r.stringify)).toFixed(2)),
  };
}

function fastJson(schema: GraphQLSchema, events: readonly object[]): Record<string, unknown> {
  const events2 = eventSchema(schema);
  const document = parse(DEVICE_DOCUMENT.replace(' occurredAt', ''));
  const withDateTime = compileQuery(events2, parse(DEVICE_DOCUMENT), undefined, { customJSONSerializer: true });
  const compiled = compileQuery(events2, document, undefined, { customJSONSerializer: true });
  if (!isCompiledQuery(compiled)) throw new Error('fast-json-stringify: not compiled');
  const results = events.map((event) => compiled.query(event, {}, {}) as ExecutionResult);
  for (let i = 0; i < 3; i++) perCall(results, compiled.stringify);
  const rounds = Array.from({ length: ROUNDS }, () => ({
    json: perCall(results, (result) => JSON.stringify(result)),
    fast: perCall(results, compiled.stringify),
  }));
  return {
    selection: 'device (bench selection without occurredAt): stringify modes',
    withDateTime: isCompiledQuery(withDateTime) ? 'compiled' : withDateTime.errors?.[0]?.message,
    jsonStringifyUs: Number(median(rounds.map((r) => r.json)).toFixed(2)),
    fastJsonStringifyUs: Number(median(rounds.map((r) => r.fast)).toFixed(2)),
    byteIdentical: results.every((result) => compiled.stringify(result) === JSON.stringify(result)),
  };
}

async function main(): Promise<void> {
  const schema: GraphQLSchema = await createSchema();
  const all = cases();
  for (const c of all) {
    const args: ExecutionArgs = { schema, document: c.document, operationName: c.operationName, variableValues: c.variableValues };
    let compiledPaths = 0;
    const interpreted = new SharedExecution(schema, (formatted) => formatted, undefined, null);
    const compiled = new SharedExecution(
      schema,
      (formatted) => formatted,
      (isCompiled) => (compiledPaths += isCompiled ? 1 : 0),
    );
    const template = Array.from({ length: N }, (_, i) => c.event(i));
    const fresh = () => template.map((event) => ({ ...event }));
    // Warm-up: both paths optimized, the selection compiled.
    measure(interpreted, args, fresh().slice(0, 2_000));
    measure(compiled, args, fresh().slice(0, 2_000));
    const execute: number[] = [];
    const jit: number[] = [];
    let identical = true;
    for (let round = 0; round < ROUNDS; round++) {
      const a = measure(interpreted, args, fresh());
      const b = measure(compiled, args, fresh());
      execute.push(a.us);
      jit.push(b.us);
      identical &&= a.texts.every((text, i) => text === b.texts[i]);
    }
    const e = median(execute);
    const j = median(jit);
    console.log(
      JSON.stringify({
        selection: c.name,
        events: N,
        rounds: ROUNDS,
        executeUsPerEvent: Number(e.toFixed(2)),
        compiledUsPerEvent: Number(j.toFixed(2)),
        ratio: Number((e / j).toFixed(1)),
        compiledShare: compiledPaths / (2_000 + N * ROUNDS),
        byteIdentical: identical,
        payloadBytes: Buffer.byteLength(measure(compiled, args, fresh().slice(0, 1)).texts[0] as string),
      }),
    );
    console.log(JSON.stringify(pieces(schema, c, template)));
  }
  const device = all[1] as Case;
  console.log(
    JSON.stringify(
      fastJson(
        schema,
        Array.from({ length: N }, (_, i) => device.event(i)),
      ),
    ),
  );
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});

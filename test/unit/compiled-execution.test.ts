/**
 * Compiled payload execution (docs/decisions/0602): the text graphql-jit's compiled form gives is
 * byte for byte graphql-js' for every event of the catalogue and for the selections a client
 * can write (aliases, fragments, variables, @skip/@include, __typename); errors, refusals and
 * throws fall back to graphql-js; the compiled forms are bounded per document.
 */
import 'reflect-metadata';
import {
  buildSchema,
  execute,
  getNamedType,
  parse,
  print,
  validate,
  GraphQLError,
  type DocumentNode,
  type ExecutionArgs,
  type GraphQLObjectType,
  type GraphQLSchema,
} from 'graphql';
import { createSchema } from '../../src/schema';
import { CompiledPayloads, jitCompiler, MAX_VARIANTS, unconditional, type Compiler } from '../../src/graphql/compiled-execution';
import type { ErrorFormatter } from '../../src/graphql/format-error';
import { SharedExecution } from '../../src/graphql/push-delivery';
import { hasOwner, normalizeMessage, withOwner, type GatewayEventDraft } from '../../src/contracts/events';
import { ALL_ROUTING_KEYS, SUBSCRIPTION_OF_FAMILY, type EventFamily } from '../../src/contracts/routing';
import { entities, events, everyField, variants, type SubscriptionField } from '../helpers/event-fixtures';
import { generateDocument, mulberry32 } from '../helpers/selection-generator';

let schema: GraphQLSchema;
beforeAll(async () => {
  schema = await createSchema();
});

const identity = <T>(formatted: T) => formatted;

/** A compiled SharedExecution (recording which path each execution took) and a graphql-js one. */
function pair(compiler: Compiler = jitCompiler) {
  const taken: boolean[] = [];
  const compiled = new SharedExecution(schema, identity, (isCompiled) => taken.push(isCompiled), compiler);
  const interpreted = new SharedExecution(schema, identity, undefined, null);
  const both = (event: object, args: ExecutionArgs) => [
    compiled.payload(event, compiled.selectionKey(args), args),
    interpreted.payload(event, interpreted.selectionKey(args), args),
  ];
  return { taken, both };
}

const selection = (document: DocumentNode, variableValues: Record<string, unknown> = {}, operationName?: string): ExecutionArgs => {
  expect(validate(schema, document)).toEqual([]);
  return { schema, document, variableValues, operationName };
};

const widest = (field: string) => {
  const type = getNamedType(schema.getSubscriptionType()!.getFields()[field]!.type) as GraphQLObjectType;
  return `__typename ${everyField(type)}`;
};

// ---------------------------------------------------------------- every event of the catalogue

/** A platform body carrying every field some routing key reads (and its other names). */
const richBody = {
  userId: 'u1',
  deviceId: 'd1',
  deviceName: 'phone "1" é',
  orderId: 'o1',
  appId: 'a1',
  packageName: 'com.x',
  versionName: '1.2',
  installationId: 'i1',
  quotaId: 'q1',
  planId: 'p1',
  amount: 59.9,
  balance: '250.50',
  threshold: 10,
  paymentId: 'pay1',
  invoiceId: 'inv1',
  paymentMethod: 'card',
  oldStatus: 'idle',
  newStatus: 'running',
  reason: 'because\nof <this>',
  providerType: 'REDROID',
  failureType: 'crash',
  recoveryStrategy: 'restart',
  attempts: 2,
  limits: { maxDevices: 3, totalCpuCores: 8, totalMemoryGB: 8.5 },
  usage: { currentDevices: 1, usedCpuCores: 2, usedMemoryGB: 1.25 },
  usagePercent: 91.5,
  severity: 'warning',
  validUntil: '2026-12-01T00:00:00.000Z',
  expiresAt: '2026-12-01T00:00:00.000Z',
  daysRemaining: 3,
  snapshotId: 's1',
  snapshotName: 'nightly',
  title: 'Hi',
  message: 'Hello, \u2028 world',
  category: 'maintenance',
  data: { link: '/x', n: 2, nested: { ok: true, list: [1, 'a', null] } },
  serviceName: 'billing',
  errorCode: 'E1',
  overdueDays: 7,
  audience: { all: true, userIds: ['u1'] },
};
const STATUSES = [undefined, 'ACTIVE', 'RUNNING', 'COMPLETED', 'INSTALLED', 'FAILED'];

/** What a routing key's message becomes, with a rich body (the first status its route accepts). */
function catalogueEvents(routingKey: string): readonly GatewayEventDraft[] {
  for (const status of STATUSES) {
    const body = {
      eventId: `e-${routingKey}`,
      eventType: routingKey,
      timestamp: '2026-11-25T00:00:00.000Z',
      payload: { ...richBody, status },
    };
    try {
      const drafts = normalizeMessage({ routingKey, body: Buffer.from(JSON.stringify(body)), messageId: 'm' }, 262_144)?.drafts;
      if (drafts && drafts.length > 0) return drafts;
    } catch {
      // refused with this status: try the next
    }
  }
  return [];
}

const ENTITY_OF: Partial<Record<EventFamily, [string, object]>> = {
  quota: ['quota', entities.quota],
  device: ['device', entities.device],
  order: ['order', entities.order],
  orderStatus: ['order', entities.order],
  app: ['installation', entities.installation],
  installation: ['installation', entities.installation],
};

describe('the compiled payload equals graphql-js byte for byte', () => {
  it.each([...ALL_ROUTING_KEYS])('for %s, every field selected, with and without its entity', (routingKey) => {
    const drafts = catalogueEvents(routingKey);
    expect(drafts.length).toBeGreaterThan(0);
    const { taken, both } = pair();
    let executions = 0;
    for (const draft of drafts) {
      const event = hasOwner(draft) ? draft : withOwner(draft, 'u1');
      const field = SUBSCRIPTION_OF_FAMILY[event.family];
      const args = selection(parse(`subscription { ${field} { ${widest(field)} } }`));
      const entity = ENTITY_OF[event.family];
      // As subscribers receive them: through pub/sub, as JSON.
      const received = [
        event,
        ...(entity
          ? [
              { ...event, [entity[0]]: entity[1] },
              { ...event, [entity[0]]: null },
            ]
          : []),
      ].map((e) => JSON.parse(JSON.stringify(e)) as object);
      for (const e of received) {
        const [compiled, reference] = both(e, args);
        expect(compiled).toBe(reference);
        expect(JSON.parse(compiled!)).not.toHaveProperty('errors');
        executions++;
      }
    }
    expect(taken).toEqual(new Array(executions).fill(true));
  });

  it('for aliases, fragments on the type and on the interface, merged fields and __typename', () => {
    const { taken, both } = pair();
    const document = parse(`
      subscription Q($u: ID) {
        changed: quotaChanged(userId: $u) {
          id: eventId
          ...Header
          kind
          ... on RealtimeEvent { __typename type eventId }
          usage { currentDevices }
          ... { usage { usedCpuCores currentDevices } t: __typename }
          quota { ...QuotaParts limits { maxDevices } }
          kind
        }
      }
      fragment Header on QuotaEvent { occurredAt userId kind }
      fragment QuotaParts on Quota { version id limits { totalMemoryGB } usage { ...Usage } }
      fragment Usage on QuotaUsage { currentDevices }
      subscription Other { deviceStatusChanged { status } }
    `);
    for (const [operationName, field] of [
      ['Q', 'quotaChanged'],
      ['Other', 'deviceStatusChanged'],
    ] as const) {
      const args = selection(document, { u: 'u1' }, operationName);
      for (const event of variants[field].slice(0, 3)) {
        const [compiled, reference] = both(event, args);
        expect(compiled).toBe(reference);
      }
    }
    expect(taken.every(Boolean)).toBe(true);
    const [text] = both(variants.quotaChanged[1]!, selection(document, {}, 'Q'));
    expect(text).toBe(
      '{"data":{"changed":{"id":"q4","occurredAt":"2026-11-25T00:00:00.000Z","userId":"u1","kind":"UPDATED","__typename":"QuotaEvent",' +
        '"type":"quota.updated","eventId":"q4","usage":{"currentDevices":1,"usedCpuCores":null},"t":"QuotaEvent",' +
        '"quota":{"version":4,"id":"q1","limits":{"totalMemoryGB":8.5,"maxDevices":3},"usage":{"currentDevices":1}}}}}',
    );
  });

  it('for @skip and @include on fields, fragment spreads and inline fragments, by variables and literals', () => {
    const { taken, both } = pair();
    const document = parse(`
      subscription($a: Boolean!, $b: Boolean!, $c: Boolean = true) {
        quotaChanged {
          kind @skip(if: $a)
          eventId
          kind
          usage @include(if: $b) { currentDevices }
          ...F @include(if: $c)
          ... on QuotaEvent @skip(if: $b) { type usage { usedCpuCores } }
          userId @skip(if: false) @include(if: $a)
          quotaId @skip(if: true)
        }
      }
      fragment F on QuotaEvent { limits @skip(if: $a) { maxDevices } occurredAt }
    `);
    const texts = new Set<string>();
    for (const a of [true, false])
      for (const b of [true, false])
        for (const c of [true, false, undefined]) {
          const args = selection(document, c === undefined ? { a, b } : { a, b, c });
          for (const event of variants.quotaChanged.slice(0, 4)) {
            const [compiled, reference] = both(event, args);
            expect(compiled).toBe(reference);
            texts.add(compiled!);
          }
        }
    // The conditions did change the payloads, and graphql-jit compiled every combination.
    expect(texts.size).toBeGreaterThan(12);
    expect(taken.every(Boolean)).toBe(true);
    // graphql-js places `kind` at its first included occurrence: after eventId when $a skips the
    // first (graphql-jit, left to evaluate the conditions itself, would place it before).
    const [skipped] = both(events.quotaChanged, selection(document, { a: true, b: false, c: false }));
    expect(skipped).toBe(
      '{"data":{"quotaChanged":{"eventId":"q","kind":"UPDATED","type":"quota.updated","usage":{"usedCpuCores":null},"userId":"u1"}}}',
    );
  });

  it('for generated selections: random fields, aliases, fragments and conditions (seeded)', () => {
    const random = mulberry32(0x602);
    const { taken, both } = pair();
    const fields = Object.keys(events) as SubscriptionField[];
    let valid = 0;
    for (let n = 0; n < 120; n++) {
      const field = fields[n % fields.length]!;
      const generated = generateDocument(schema, field, random);
      const document = parse(generated.source);
      if (validate(schema, document).length > 0) continue;
      valid++;
      for (const event of variants[field]) {
        const [compiled, reference] = both(event, { schema, document, variableValues: generated.variables });
        if (compiled !== reference) throw new Error(`differs for\n${print(document)}\n${JSON.stringify(generated.variables)}`);
      }
    }
    expect(valid).toBeGreaterThan(100);
    // Most went the compiled way (the ones that did not had errors: usedCpuCores 2.5 is no Int).
    expect(taken.filter(Boolean).length).toBeGreaterThan(taken.length * 0.8);
  });
});

// ---------------------------------------------------------------- errors and fallbacks

describe('graphql-js produces what the compiled form would not give exactly', () => {
  const malformed: [string, string, object][] = [
    ['null in a non-null field', 'eventId kind', { ...events.quotaChanged, kind: null }],
    ['a missing non-null field', 'eventId kind', { ...events.quotaChanged, kind: undefined }],
    [
      'null in a non-null field inside a nullable object',
      'eventId quota { id createdAt: updatedAt }',
      {
        ...events.quotaChanged,
        quota: { ...entities.quota, updatedAt: null },
      },
    ],
    ['an enum value the enum does not have', 'eventId kind', { ...events.quotaChanged, kind: 'SIDEWAYS' }],
    ['a custom scalar that does not serialize', 'eventId occurredAt', { ...events.quotaChanged, occurredAt: 'yesterday' }],
    ['an Int that is not one', 'usage { usedCpuCores currentDevices }', { ...events.quotaChanged, usage: { usedCpuCores: 2.5 } }],
    ['a JSON scalar that is no object', 'eventId data', { ...events.notifications, data: 'text' }],
  ];

  it.each(malformed)('%s: the error payload is graphql-js’, formatted', (_, fields, event) => {
    const taken: boolean[] = [];
    const format: ErrorFormatter = (formatted, error) => ({
      ...formatted,
      extensions: { formatted: true, graphql: error instanceof GraphQLError },
    });
    const compiled = new SharedExecution(schema, format, (isCompiled) => taken.push(isCompiled));
    const interpreted = new SharedExecution(schema, format, undefined, null);
    const field = 'family' in event && event.family === 'notification' ? 'notifications' : 'quotaChanged';
    const args = selection(parse(`subscription { ${field} { ${fields} } }`));
    const text = compiled.payload(event, compiled.selectionKey(args), args);
    expect(text).toBe(interpreted.payload(event, interpreted.selectionKey(args), args));
    const payload = JSON.parse(text) as { errors?: { extensions: unknown }[] };
    expect(payload.errors?.[0]?.extensions).toEqual({ formatted: true, graphql: true });
    expect(taken).toEqual([false]);
  });

  it('a leaf serializer returning null is an error in graphql-js: the compiled form does not turn it into a null', () => {
    const sdl = buildSchema('scalar Odd type Query { ok: Boolean } type E { v: Odd w: Int } type Subscription { e: E! }');
    (sdl.getType('Odd') as { serialize: (v: unknown) => unknown }).serialize = (v) => (v === 'none' ? null : v);
    sdl.getSubscriptionType()!.getFields().e!.resolve = (event: unknown) => event;
    const payloads = new CompiledPayloads(sdl);
    const args: ExecutionArgs = { schema: sdl, document: parse('subscription { e { v w } }') };
    expect(payloads.run('k', args, { v: 'x', w: 1 }, {})).toBe(JSON.stringify(execute({ ...args, rootValue: { v: 'x', w: 1 } })));
    expect(payloads.run('k', args, { v: 'none', w: 1 }, {})).toBeUndefined();
    expect((execute({ ...args, rootValue: { v: 'none', w: 1 } }) as { errors?: unknown[] }).errors).toHaveLength(1);
  });

  const refusals: [string, Compiler][] = [
    ['compileQuery returns errors', () => ({ errors: [new GraphQLError('cannot compile')] })],
    [
      'compileQuery throws',
      () => {
        throw new Error('compiler bug');
      },
    ],
    [
      'the compiled function throws',
      () => ({
        query: () => {
          throw new Error('generated code bug');
        },
        stringify: JSON.stringify,
      }),
    ],
  ];

  it.each(refusals)('%s: every payload, full and sparse, is executed by graphql-js, the same text', (_, compiler) => {
    const { taken, both } = pair(compiler);
    let executions = 0;
    for (const field of Object.keys(events) as SubscriptionField[]) {
      const args = selection(parse(`subscription { ${field} { ${widest(field)} } }`));
      for (const event of variants[field]) {
        const [compiled, reference] = both(event, args);
        expect(compiled).toBe(reference);
        executions++;
      }
    }
    expect(taken).toEqual(new Array(executions).fill(false));
  });

  it('compiles a selection once, shared by root arguments; past MAX_VARIANTS per document, graphql-js', () => {
    let compilations = 0;
    const counting: Compiler = (...args) => {
      compilations++;
      return jitCompiler(...args);
    };
    const { taken, both } = pair(counting);
    const document = parse(
      `subscription($u: ID, $after: ID, ${Array.from({ length: 6 }, (_, i) => `$v${i}: Boolean!`).join(', ')}) {
        quotaChanged(userId: $u, after: $after) { eventId ${Array.from({ length: 6 }, (_, i) => `f${i}: kind @include(if: $v${i})`).join(' ')} }
      }`,
    );
    const combination = (n: number) => Object.fromEntries(Array.from({ length: 6 }, (_, i) => [`v${i}`, ((n >> i) & 1) === 1]));
    for (let i = 0; i < 5; i++) {
      const [compiled, reference] = both(
        { ...events.quotaChanged, eventId: `e${i}` },
        selection(document, { u: `u${i}`, after: `a${i}`, ...combination(0) }),
      );
      expect(compiled).toBe(reference);
    }
    expect(compilations).toBe(1);
    expect(taken).toEqual([true, true, true, true, true]);
    taken.length = 0;
    for (let n = 1; n < 64; n++) {
      const [compiled, reference] = both(events.quotaChanged, selection(document, combination(n)));
      expect(compiled).toBe(reference);
    }
    expect(compilations).toBe(MAX_VARIANTS);
    expect(taken).toEqual(Array.from({ length: 63 }, (_, n) => n + 1 < MAX_VARIANTS));
  });
  it('keeps at most maxCompiled selections compiled in all; the others execute on graphql-js', () => {
    const s = buildSchema('type Query { ok: Boolean } type E { v: Int } type Subscription { e: E! }');
    s.getSubscriptionType()!.getFields().e!.resolve = (event: unknown) => event;
    const payloads = new CompiledPayloads(s, jitCompiler, 2);
    const documents = [1, 2, 3].map((n) => parse(`subscription { e { v${n}: v } }`));
    const texts = documents.map((document, n) => payloads.run(`k${n}`, { schema: s, document }, { v: n }, {}));
    expect(texts).toEqual(['{"data":{"e":{"v1":0}}}', '{"data":{"e":{"v2":1}}}', undefined]);
    expect(payloads.size).toBe(2);
    // Not remembered as refused: the third is tried again (and still finds no room).
    expect(payloads.run('k2', { schema: s, document: documents[2]! }, { v: 2 }, {})).toBeUndefined();
    expect(payloads.run('k0', { schema: s, document: documents[0]! }, { v: 5 }, {})).toBe('{"data":{"e":{"v1":5}}}');
  });
});

describe('unconditional', () => {
  it('applies the conditions as graphql-js would, drops the root arguments and the variables no longer used', () => {
    const document = parse(`
      subscription S($u: ID, $x: Boolean!, $y: Boolean = false) {
        quotaChanged(userId: $u) { eventId @skip(if: $x) kind @include(if: $x) ...F @include(if: $y) ... @skip(if: $y) { type } }
      }
      fragment F on QuotaEvent { userId @include(if: true) }
      query Other { __typename }
    `);
    const resolved = unconditional(schema, document, 'S', { x: true });
    expect(print(resolved!)).toBe(
      print(parse('subscription S { quotaChanged { kind ... { type } } } fragment F on QuotaEvent { userId }')),
    );
  });

  it('gives up where it cannot be exact: variables that do not coerce, an empty selection, an unknown operation', () => {
    const document = parse('subscription($x: Boolean!) { quotaChanged { eventId @skip(if: $x) } }');
    expect(unconditional(schema, document, undefined, {})).toBeUndefined();
    expect(unconditional(schema, document, undefined, { x: 'yes' })).toBeUndefined();
    expect(unconditional(schema, document, undefined, { x: true })).toBeUndefined();
    expect(unconditional(schema, document, 'Nope', { x: false })).toBeUndefined();
    expect(unconditional(schema, document, undefined, { x: false })).toBeDefined();
  });
});

/**
 * The delivery fast path's shared execution: every subscription field's payload is produced
 * synchronously (order depends on it), once per event and selection, errors formatted.
 */
// Typed matchers: @types/jest's expect.objectContaining()/any() return `any`.
import { expect } from '@jest/globals';
import 'reflect-metadata';
import { execute, getNamedType, GraphQLError, parse, type GraphQLObjectType, type GraphQLSchema } from 'graphql';
import { createSchema } from '../../src/schema';
import { jitCompiler, type Compiler } from '../../src/graphql/compiled-execution';
import { SharedExecution } from '../../src/graphql/push-delivery';
import { base, events, everyField, variants } from '../helpers/event-fixtures';

let schema: GraphQLSchema;
beforeAll(async () => {
  schema = await createSchema();
});

const args = (field: string, selection: string) => ({
  schema,
  document: parse(`subscription { ${field} { ${selection} } }`),
  variableValues: {},
});

/** The two paths a payload takes: graphql-jit's compiled form, and graphql-js (the fallback). */
const paths: [string, Compiler | null][] = [
  ['compiled with graphql-jit', jitCompiler],
  ['executed by graphql-js', null],
];

describe.each(paths)('SharedExecution, %s', (path, compiler) => {
  it.each(Object.keys(events) as (keyof typeof events)[])(
    'gives for %s, every field selected, exactly what the code-first schema gives',
    async (field) => {
      const taken: boolean[] = [];
      const expected: boolean[] = [];
      const execution = new SharedExecution(
        schema,
        (formatted) => formatted,
        (compiled) => taken.push(compiled),
        compiler,
      );
      const interpreted = new SharedExecution(schema, (formatted) => formatted, undefined, null);
      const type = getNamedType(schema.getSubscriptionType()!.getFields()[field]!.type) as GraphQLObjectType;
      const document = parse(`subscription { ${field} { __typename ${everyField(type)} } }`);
      for (const event of variants[field]) {
        // What graphql-js' own subscribe would send: the type-graphql resolvers, per subscriber.
        const reference = await execute({ schema, document, rootValue: event, contextValue: {} });
        // A payload with errors (usedCpuCores: 2.5 is no Int) is graphql-js' to produce.
        expected.push(path === 'compiled with graphql-jit' && reference.errors === undefined);
        const a = { schema, document, variableValues: {} };
        const text = execution.payload(event, execution.selectionKey(a), a);
        expect(JSON.parse(text)).toEqual(JSON.parse(JSON.stringify(reference)));
        // And byte for byte what graphql-js gives on the event schema (the text pushed until 0602).
        expect(text).toBe(interpreted.payload(event, interpreted.selectionKey(a), a));
      }
      // Each variant took the path under test, but for the errors.
      expect(taken).toEqual(expected);
    },
  );
});

describe('SharedExecution', () => {
  it.each(Object.keys(events) as (keyof typeof events)[])('produces the %s payload synchronously, as the schema shapes it', (field) => {
    const execution = new SharedExecution(schema, (formatted) => formatted);
    const a = args(field, '__typename eventId type userId occurredAt');
    const json = execution.payload(events[field], execution.selectionKey(a), a);
    expect(JSON.parse(json)).toEqual({
      data: {
        [field]: {
          __typename: expect.any(String),
          eventId: events[field].eventId,
          type: events[field].type,
          userId: 'u1',
          occurredAt: base.occurredAt,
        },
      },
    });
  });

  it('keys a selection by document, operation and the variables the payload uses, not the root arguments', () => {
    const execution = new SharedExecution(schema, (formatted) => formatted);
    const document = parse(
      'subscription($u: ID, $after: ID, $withUsage: Boolean!) { quotaChanged(userId: $u, after: $after) { eventId usage @include(if: $withUsage) { currentDevices } } }',
    );
    const key = (variableValues: Record<string, unknown>) => execution.selectionKey({ document, variableValues });
    // userId and after only choose the stream: one execution serves them all.
    expect(key({ u: 'u1', after: 'e1', withUsage: true })).toBe(key({ u: 'u2', after: 'e9', withUsage: true }));
    // A variable inside the selection changes the payload.
    expect(key({ u: 'u1', withUsage: true })).not.toBe(key({ u: 'u1', withUsage: false }));
    // Variables used in fragments count too.
    const withFragment = parse(
      'subscription($u: ID, $full: Boolean!) { quotaChanged(userId: $u) { ...F } } fragment F on QuotaEvent { eventId usage @include(if: $full) { currentDevices } }',
    );
    const fragmentKey = (variableValues: Record<string, unknown>) => execution.selectionKey({ document: withFragment, variableValues });
    expect(fragmentKey({ u: 'a', full: true })).toBe(fragmentKey({ u: 'b', full: true }));
    expect(fragmentKey({ u: 'a', full: true })).not.toBe(fragmentKey({ u: 'a', full: false }));
  });

  it('executes once per event and selection, and keys equal documents and variables alike', () => {
    let executions = 0;
    const execution = new SharedExecution(
      schema,
      (formatted) => formatted,
      () => executions++,
    );
    const document = parse(
      'subscription($u: ID, $full: Boolean!) { quotaChanged(userId: $u) { eventId kind usage @include(if: $full) { currentDevices } } }',
    );
    const a = { schema, document, variableValues: { u: 'u1', full: true } };
    const b = { schema, document, variableValues: { u: 'u1', full: false } };
    expect(execution.selectionKey(a)).toBe(execution.selectionKey({ ...a }));
    expect(execution.selectionKey(a)).not.toBe(execution.selectionKey(b));
    for (let i = 0; i < 5; i++) execution.payload(events.quotaChanged, execution.selectionKey(a), a);
    execution.payload(events.quotaChanged, execution.selectionKey(b), b);
    execution.payload({ ...events.quotaChanged, eventId: 'q2' }, execution.selectionKey(a), a);
    expect(executions).toBe(3);
  });

  it('formats execution errors with the error formatter', () => {
    const execution = new SharedExecution(schema, (formatted, error) => ({
      message: 'formatted',
      extensions: { code: 'X', original: error instanceof GraphQLError },
    }));
    const a = args('quotaChanged', 'eventId kind');
    // kind is non-null: a malformed event gives a field error, not a thrown exception.
    const payload = JSON.parse(execution.payload({ ...events.quotaChanged, kind: null }, execution.selectionKey(a), a)) as {
      errors?: unknown;
    };
    expect(payload.errors).toEqual([{ message: 'formatted', extensions: { code: 'X', original: true } }]);
  });
});

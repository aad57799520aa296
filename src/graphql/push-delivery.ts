/**
 * The delivery fast path: what one event costs per subscriber is one cache lookup, one string
 * concatenation and one socket write.
 *
 * graphql-ws' `useServer` pays, per subscriber and per event: an execution of the subscription
 * document (type-graphql resolvers make it asynchronous: ≈70 µs measured here), a pulled async
 * iterator, a message validation, a JSON serialization and a promise around every socket write.
 * The payload of an event depends only on the event and the selection (document, operation,
 * variables), never on who receives it (authorization happened when the subscription started,
 * and the event types have no viewer-dependent fields), so:
 *
 * - `SharedExecution` executes each event once per distinct selection and serializes the result
 *   once; every subscriber with that selection gets the same JSON text. It executes against the
 *   same SDL rebuilt without the code-first resolvers (`eventSchema`), which keeps execution
 *   synchronous (so order is kept) and cheap; and it runs graphql-jit's compiled form of the
 *   selection (./compiled-execution.ts, ≈5x cheaper per event), giving byte for byte graphql-js'
 *   text, with graphql-js executing whatever the compiled form would not give exactly (errors,
 *   refusals). docs/decisions/0002 and 0602.
 * - The socket layer (./graphql-ws-server.ts) attaches to each subscription's stream and writes
 *   `next` frames straight onto the socket; while the socket's send buffer is over its high-water
 *   mark, events wait in the subscription's bounded, coalescing stream until it drains.
 */
import {
  buildASTSchema,
  execute,
  getOperationAST,
  GraphQLEnumType,
  GraphQLScalarType,
  isSpecifiedScalarType,
  Kind,
  parse,
  printSchema,
  visit,
  type ASTNode,
  type GraphQLSchema,
  type DocumentNode,
  type ExecutionArgs,
  type ExecutionResult,
} from 'graphql';
import type { Consumer } from '../lib/event-queue';
import { CompiledPayloads, jitCompiler, type Compiler } from './compiled-execution';
import type { ErrorFormatter } from './format-error';

/** A stream the fast path can drive (see `EventStream.attach`). */
export interface PushSource<T> {
  attach(consumer: Consumer<T>): void;
  flush(): void;
  return?(): Promise<IteratorResult<T>>;
}

export function isPushSource<T>(value: unknown): value is PushSource<T> & AsyncIterableIterator<T> {
  return typeof (value as PushSource<T> | undefined)?.attach === 'function';
}

/**
 * The schema events are executed against: the same SDL, rebuilt without the code-first
 * resolvers. type-graphql wraps every field in a resolver that gathers arguments and runs
 * middlewares, and its subscription root field returns a promise; events are plain objects whose
 * fields are their properties, so graphql-js' default resolver gives the same values at a
 * fraction of the cost, synchronously (order depends on it). Custom scalars keep their own
 * serialization; each root field returns the event itself. test/unit/push-delivery.test.ts
 * checks that every subscription's full payload equals what the code-first schema produces.
 */
export function eventSchema(schema: GraphQLSchema): GraphQLSchema {
  const rebuilt = buildASTSchema(parse(printSchema(schema)));
  for (const type of Object.values(schema.getTypeMap())) {
    if (!(type instanceof GraphQLScalarType) || isSpecifiedScalarType(type)) continue;
    const copy = rebuilt.getType(type.name);
    if (copy instanceof GraphQLScalarType) {
      copy.serialize = type.serialize;
      copy.parseValue = type.parseValue;
      copy.parseLiteral = type.parseLiteral;
    }
  }
  for (const type of Object.values(schema.getTypeMap())) {
    if (!(type instanceof GraphQLEnumType) || type.name.startsWith('__')) continue;
    const copy = rebuilt.getType(type.name);
    // Enum values travel by name; the rebuilt enums' internal values are their names too.
    if (copy instanceof GraphQLEnumType && type.getValues().some((value) => value.value !== value.name)) {
      throw new Error(`enum ${type.name}: internal values differ from names; events could not be executed without its resolvers`);
    }
  }
  for (const field of Object.values(rebuilt.getSubscriptionType()?.getFields() ?? {})) field.resolve = (event: unknown) => event;
  return rebuilt;
}

/** Distinct selection keys shared as one string each (clients send a few documents). */
const MAX_INTERNED_KEYS = 10_000;

/** Resolvers of event fields see no viewer: the payload is shared by every subscriber. */
const NO_VIEWER = Object.freeze({});

export class SharedExecution {
  private readonly schema: GraphQLSchema;
  /** Per event (while anything still holds it): selection key -> serialized `ExecutionResult`. */
  private readonly payloads = new WeakMap<object, Map<string, string>>();
  private readonly documentIds = new WeakMap<DocumentNode, number>();
  /** Selection keys in use, so that equal keys are one string (bounded: a cap, not an LRU). */
  private readonly keys = new Map<string, string>();
  /** Per document and operation name: the variables its payload can depend on. */
  private readonly payloadVariables = new WeakMap<DocumentNode, Map<string, readonly string[]>>();
  private nextDocumentId = 0;
  /** The compiled forms of the selections (./compiled-execution.ts); null: graphql-js only. */
  private readonly compiled: CompiledPayloads | null;

  constructor(
    schema: GraphQLSchema,
    private readonly formatError: ErrorFormatter,
    /** Counts executions (one per event and distinct selection): compiled, or by graphql-js. */
    private readonly onExecute: (compiled: boolean) => void = () => undefined,
    /** graphql-jit's compileQuery; null executes every payload with graphql-js. */
    compiler: Compiler | null = jitCompiler,
  ) {
    this.schema = eventSchema(schema);
    this.compiled = compiler ? new CompiledPayloads(this.schema, compiler) : null;
  }

  /**
   * What identifies a selection: the document (shared by query text: the socket layer caches
   * parsed documents), the operation, and the values of the variables the payload can depend on.
   * The root field's own arguments (`userId`, `deviceId`, `after`) only choose the stream, so
   * subscribers who differ only in those (every resumed subscription has its own `after`) still
   * share one execution.
   */
  selectionKey(args: Pick<ExecutionArgs, 'document' | 'operationName' | 'variableValues'>): string {
    let id = this.documentIds.get(args.document);
    if (id === undefined) {
      id = ++this.nextDocumentId;
      this.documentIds.set(args.document, id);
    }
    const values = args.variableValues ?? {};
    const used: Record<string, unknown> = {};
    for (const name of this.variablesOf(args.document, args.operationName)) used[name] = values[name];
    const key = `${id}\u0000${args.operationName ?? ''}\u0000${JSON.stringify(used)}`;
    const interned = this.keys.get(key);
    if (interned !== undefined) return interned;
    if (this.keys.size < MAX_INTERNED_KEYS) this.keys.set(key, key);
    return key;
  }

  /** The variables used anywhere but in the root fields' arguments, sorted. */
  private variablesOf(document: DocumentNode, operationName: string | null | undefined): readonly string[] {
    let byOperation = this.payloadVariables.get(document);
    if (!byOperation) {
      byOperation = new Map();
      this.payloadVariables.set(document, byOperation);
    }
    const cached = byOperation.get(operationName ?? '');
    if (cached) return cached;
    const names = new Set<string>();
    const collect = (node: ASTNode) =>
      visit(node, {
        Variable(variable) {
          names.add(variable.name.value);
        },
      });
    const operation = getOperationAST(document, operationName);
    if (operation) {
      for (const directive of operation.directives ?? []) collect(directive);
      for (const selection of operation.selectionSet.selections) {
        if (selection.kind !== Kind.FIELD) {
          collect(selection);
          continue;
        }
        for (const directive of selection.directives ?? []) collect(directive);
        if (selection.selectionSet) collect(selection.selectionSet);
      }
    }
    // Fragments may be spread anywhere: every variable they use counts.
    for (const definition of document.definitions) if (definition.kind === Kind.FRAGMENT_DEFINITION) collect(definition);
    const sorted = [...names].sort();
    byOperation.set(operationName ?? '', sorted);
    return sorted;
  }

  /** The `next` payload of `event` for a selection, as JSON text; executed once per pair. */
  payload(event: object, key: string, args: ExecutionArgs): string {
    let byKey = this.payloads.get(event);
    if (byKey === undefined) {
      byKey = new Map();
      this.payloads.set(event, byKey);
    }
    let json = byKey.get(key);
    if (json === undefined) {
      json = this.run(event, key, args);
      byKey.set(key, json);
    }
    return json;
  }

  private run(event: object, key: string, args: ExecutionArgs): string {
    const compiled = this.compiled?.run(key, args, event, NO_VIEWER);
    this.onExecute(compiled !== undefined);
    if (compiled !== undefined) return compiled;
    const result = execute({
      schema: this.schema,
      document: args.document,
      operationName: args.operationName,
      variableValues: args.variableValues,
      rootValue: event,
      contextValue: NO_VIEWER,
    });
    if (result instanceof Promise) {
      // An event field got an asynchronous resolver: payloads could no longer be produced in
      // order without a wait per subscriber. test/unit/push-delivery.test.ts guards against it.
      throw new Error('event payload resolvers must be synchronous');
    }
    return JSON.stringify(this.formatted(result));
  }

  private formatted(result: ExecutionResult): ExecutionResult | { data?: unknown; errors: unknown[] } {
    if (!result.errors) return result;
    return { ...result, errors: result.errors.map((error) => this.formatError(error.toJSON(), error)) };
  }
}

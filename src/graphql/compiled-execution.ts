/**
 * Compiled payload execution: each distinct selection of a pushed subscription compiled once
 * with graphql-jit, so an event's payload is a call of generated code instead of a walk of
 * graphql-js' interpreter (docs/decisions/0602-compiled-payload-execution.md).
 *
 * The text pushed to clients must stay byte for byte what graphql-js' `execute` gives, so a
 * compiled result is used only where it cannot differ, and graphql-js executes the rest:
 * - `@skip` / `@include` are resolved before compiling, with the selection's own variable values
 *   (the selection key includes them): graphql-jit evaluates them per field at run time and
 *   places a field where its first occurrence is, skipped or not, where graphql-js places it at
 *   its first included one. What is compiled has no conditions left.
 * - The root field's arguments are dropped: they only choose the stream (the root resolver
 *   returns the event and reads none), so no argument or variable is coerced per event.
 * - A result with any error is thrown away and executed again by graphql-js: graphql-jit builds
 *   errors its own way (its own constructor, messages of its own for a leaf that does not
 *   serialize, its own null-propagation pass). Rather than prove each equal, the error path is
 *   graphql-js'; errors only come from malformed events, so the second execution costs nothing
 *   in practice.
 * - A leaf serializer that returns null or undefined is an error in graphql-js but a null (or an
 *   error) in graphql-jit: every serializer is wrapped to throw then, so that event falls back.
 * - A selection graphql-jit refuses to compile, or whose compiled function throws, executes on
 *   graphql-js (the refusal is remembered; a throw falls back for that event only).
 * - `stringify`'s fast-json-stringify mode is not used: it has no schema for custom scalars
 *   (every event has a DateTime) and orders keys by its JSON schema. `JSON.stringify` it is.
 *
 * Compiled forms hang off the document (a WeakMap, like SharedExecution's other per-document
 * data: documents are shared by query text through the 1,000-entry document cache and live as
 * long as a subscription or that cache holds them), at most MAX_VARIANTS per document and
 * MAX_COMPILED alive in all (one is ≈36 KB of heap and about a millisecond to compile): past
 * either, graphql-js executes the new selection. A document's forms are counted off when it is
 * collected. Compiling on a selection's first event is fine: documents are shared by query text,
 * so a process compiles each of its clients' few documents once.
 */
import {
  getDirectiveValues,
  getOperationAST,
  getVariableValues,
  GraphQLEnumType,
  GraphQLIncludeDirective,
  GraphQLScalarType,
  GraphQLSkipDirective,
  Kind,
  visit,
  BREAK,
  type DirectiveNode,
  type DocumentNode,
  type ExecutionArgs,
  type ExecutionResult,
  type FieldNode,
  type FragmentSpreadNode,
  type GraphQLSchema,
  type InlineFragmentNode,
  type OperationDefinitionNode,
} from 'graphql';
import { compileQuery, isCompiledQuery, type CompiledQuery, type CompilerOptions } from 'graphql-jit';

/** Compiled selections per document (distinct operations and @skip/@include values); past it, graphql-js. */
export const MAX_VARIANTS = 16;

/** Compiled selections alive at once (the document cache's size); past it, graphql-js. */
export const MAX_COMPILED = 1_000;

/** What graphql-jit's compileQuery is called as (a test replaces it to force the fallback). */
export type Compiler = (
  schema: GraphQLSchema,
  document: DocumentNode,
  operationName: string | undefined,
  options: Partial<CompilerOptions>,
) => CompiledQuery | ExecutionResult;

/** graphql-jit's own. */
export const jitCompiler: Compiler = compileQuery;

/** A selection's compiled form, or null: graphql-js executes it. */
type Compiled = CompiledQuery | null;

/** A document's selections, and how many of them are compiled (counted off the total when it goes). */
interface Variants {
  readonly byKey: Map<string, Compiled>;
  readonly held: { compiled: number };
}

export class CompiledPayloads {
  private readonly byDocument = new WeakMap<DocumentNode, Variants>();
  private readonly options: Partial<CompilerOptions>;
  /** Compiled selections of the documents still alive. */
  private alive = 0;
  private readonly collected = new FinalizationRegistry<Variants['held']>((held) => {
    this.alive -= held.compiled;
  });

  constructor(
    /** The resolver-free event schema (push-delivery.ts `eventSchema`). */
    private readonly schema: GraphQLSchema,
    private readonly compile: Compiler = jitCompiler,
    private readonly maxCompiled = MAX_COMPILED,
  ) {
    this.options = { customSerializers: strictSerializers(schema) };
  }

  /** Compiled selections alive now. */
  get size(): number {
    return this.alive;
  }

  /**
   * The payload of `rootValue` for the selection `key` as JSON text, or undefined where
   * graphql-js must execute it (not compiled, an error in the result, a throw).
   */
  run(key: string, args: ExecutionArgs, rootValue: object, contextValue: unknown): string | undefined {
    const compiled = this.compiled(key, args);
    if (!compiled) return undefined;
    let result: ReturnType<CompiledQuery['query']>;
    try {
      result = compiled.query(rootValue, contextValue, args.variableValues);
    } catch {
      return undefined;
    }
    // A promise: something in the event is a thenable; graphql-js says what.
    if (result instanceof Promise || result.errors !== undefined) return undefined;
    return JSON.stringify(result);
  }

  private compiled(key: string, args: ExecutionArgs): Compiled {
    let variants = this.byDocument.get(args.document);
    if (variants === undefined) {
      variants = { byKey: new Map(), held: { compiled: 0 } };
      this.byDocument.set(args.document, variants);
      this.collected.register(args.document, variants.held);
    }
    let compiled = variants.byKey.get(key);
    if (compiled === undefined) {
      // Full: not remembered, so the selection compiles once there is room again.
      if (variants.byKey.size >= MAX_VARIANTS || this.alive >= this.maxCompiled) return null;
      compiled = this.compileSelection(args);
      variants.byKey.set(key, compiled);
      if (compiled) {
        variants.held.compiled++;
        this.alive++;
      }
    }
    return compiled;
  }

  private compileSelection(args: ExecutionArgs): Compiled {
    const operationName = args.operationName ?? undefined;
    const document = unconditional(this.schema, args.document, operationName, args.variableValues ?? {});
    if (!document) return null;
    try {
      const compiled = this.compile(this.schema, document, operationName, this.options);
      return isCompiledQuery(compiled) ? compiled : null;
    } catch {
      return null;
    }
  }
}

/**
 * The leaf serializers, each throwing where graphql-js would raise an error for its result
 * (`Expected \`T.serialize\` to return non-nullish value`): graphql-jit would give null.
 */
function strictSerializers(schema: GraphQLSchema): Record<string, (value: unknown) => unknown> {
  const serializers: Record<string, (value: unknown) => unknown> = {};
  for (const type of Object.values(schema.getTypeMap())) {
    if (!(type instanceof GraphQLScalarType) && !(type instanceof GraphQLEnumType)) continue;
    serializers[type.name] = (value) => {
      const serialized = type.serialize(value);
      if (serialized == null) throw new TypeError(`${type.name}.serialize returned ${String(serialized)}`);
      return serialized;
    };
  }
  return serializers;
}

const isCondition = (directive: DirectiveNode) => directive.name.value === 'skip' || directive.name.value === 'include';

/**
 * The operation and the fragments with every @skip/@include applied as graphql-js would apply
 * them with these variables (a skipped node removed, the directive dropped from an included
 * one), the root fields without arguments, and no variables where none is used any more.
 * Undefined when that cannot be done exactly: no such operation, variables that do not coerce,
 * a condition that does not evaluate, or a selection set left empty.
 */
export function unconditional(
  schema: GraphQLSchema,
  document: DocumentNode,
  operationName: string | undefined,
  variableValues: Readonly<Record<string, unknown>>,
): DocumentNode | undefined {
  const operation = getOperationAST(document, operationName);
  if (!operation) return undefined;
  const coerced = getVariableValues(schema, operation.variableDefinitions ?? [], variableValues);
  if (coerced.errors) return undefined;
  const values = coerced.coerced;
  let exact = true;
  const apply = (node: FieldNode | FragmentSpreadNode | InlineFragmentNode) => {
    if (!node.directives?.some(isCondition)) return undefined;
    try {
      // graphql-js' shouldIncludeNode.
      if (getDirectiveValues(GraphQLSkipDirective, node, values)?.if === true) return null;
      if (getDirectiveValues(GraphQLIncludeDirective, node, values)?.if === false) return null;
    } catch {
      exact = false;
      return BREAK;
    }
    return { ...node, directives: node.directives.filter((directive) => !isCondition(directive)) };
  };
  const rootless: OperationDefinitionNode = {
    ...operation,
    selectionSet: {
      ...operation.selectionSet,
      selections: operation.selectionSet.selections.map((selection) =>
        selection.kind === Kind.FIELD ? { ...selection, arguments: [] } : selection,
      ),
    },
  };
  const fragments = document.definitions.filter((definition) => definition.kind === Kind.FRAGMENT_DEFINITION);
  const resolved = visit(
    { ...document, definitions: [rootless, ...fragments] },
    {
      Field: apply,
      FragmentSpread: apply,
      InlineFragment: apply,
      SelectionSet: {
        leave(node) {
          if (node.selections.length === 0) exact = false;
        },
      },
    },
  );
  if (!exact) return undefined;
  let usesVariables = false;
  visit(resolved, {
    // (their own `$name` is no use)
    VariableDefinition: () => false,
    Variable() {
      usesVariables = true;
      return BREAK;
    },
  });
  if (usesVariables) return resolved;
  return {
    ...resolved,
    definitions: resolved.definitions.map((definition) =>
      definition.kind === Kind.OPERATION_DEFINITION ? { ...definition, variableDefinitions: [] } : definition,
    ),
  };
}

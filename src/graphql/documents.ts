/**
 * Parsing and validation of operation documents, cached by query text (clients send the same few
 * documents over and over), with the same limits on every transport: lexical tokens while
 * parsing, then the specified rules, the gateway's own (depth, complexity, NUL) and, when
 * introspection is disabled, graphql-js' NoSchemaIntrospectionCustomRule.
 */
import {
  getOperationAST,
  GraphQLError,
  NoSchemaIntrospectionCustomRule,
  parse,
  specifiedRules,
  validate,
  type DocumentNode,
  type GraphQLSchema,
  type OperationTypeNode,
  type ValidationRule,
} from 'graphql';
import { ErrorCode } from '../contracts/errors';

/** Documents kept (least recently used dropped first). */
const MAX_CACHED_DOCUMENTS = 1_000;

export interface DocumentLimits {
  /** `GRAPHQL_MAX_TOKENS`: checked while parsing. */
  readonly maxTokens: number;
  /** Rules beyond graphql-js' specified ones (depth, complexity, NUL strings). */
  readonly validationRules: readonly ValidationRule[];
  /** `GRAPHQL_INTROSPECTION`: false refuses `__schema` / `__type`. */
  readonly introspection: boolean;
}

export interface PreparedDocument {
  readonly document: DocumentNode;
  readonly operation: OperationTypeNode;
}

export class DocumentCache {
  private readonly rules: readonly ValidationRule[];
  /** Query text -> document that passed validation (most recently used last). */
  private readonly documents = new Map<string, DocumentNode>();

  constructor(
    private readonly schema: GraphQLSchema,
    private readonly limits: DocumentLimits,
  ) {
    this.rules = [...specifiedRules, ...limits.validationRules, ...(limits.introspection ? [] : [NoSchemaIntrospectionCustomRule])];
  }

  /** The document and its operation, or the errors that refuse it (an error on the operation, never a closed connection). */
  prepare(query: string, operationName: string | null | undefined): PreparedDocument | readonly GraphQLError[] {
    const document = this.documents.get(query) ?? this.parseAndValidate(query);
    if (!('kind' in document)) return document;
    this.documents.delete(query);
    this.documents.set(query, document);
    if (this.documents.size > MAX_CACHED_DOCUMENTS) this.documents.delete(this.documents.keys().next().value as string);
    const operation = getOperationAST(document, operationName)?.operation;
    if (!operation) {
      return [new GraphQLError('Unable to identify operation', { extensions: { code: ErrorCode.OPERATION_RESOLUTION_FAILURE } })];
    }
    return { document, operation };
  }

  private parseAndValidate(query: string): DocumentNode | readonly GraphQLError[] {
    let document: DocumentNode;
    try {
      document = parse(query, { maxTokens: this.limits.maxTokens });
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      return [new GraphQLError(message, { extensions: { code: ErrorCode.GRAPHQL_PARSE_FAILED } })];
    }
    const errors = validate(this.schema, document, this.rules);
    return errors.length > 0 ? errors : document;
  }
}

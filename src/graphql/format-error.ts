/**
 * One error formatter for HTTP (Apollo) and WebSocket (graphql-ws). Never sends a stack trace or
 * anything outside the GraphQL error shape. Errors with a known `extensions.code` pass through;
 * anything else is unexpected: logged with its stack, reported as INTERNAL_SERVER_ERROR, and its
 * message masked in production.
 */
import { GraphQLError, type GraphQLFormattedError } from 'graphql';
import type { Logger } from 'pino';
import { ErrorCode } from '../contracts/errors';

/** Codes whose message is meant for the client. */
const CLIENT_CODES = new Set<string>(Object.values(ErrorCode).filter((c) => c !== ErrorCode.INTERNAL_SERVER_ERROR));

export type ErrorFormatter = (formatted: GraphQLFormattedError, error: unknown) => GraphQLFormattedError;

export function createErrorFormatter(options: { production: boolean; logger: Logger }): ErrorFormatter {
  return (formatted, error) => {
    const original = error instanceof GraphQLError ? error.originalError : undefined;
    let code = formatted.extensions?.code as string | undefined;
    // graphql-js errors carry no code over graphql-ws: variables that fail coercion are the
    // caller's input (as Apollo reports them over HTTP); parse and validation errors have no cause.
    if (code === undefined && error instanceof GraphQLError) {
      if (error.message.startsWith('Variable "$')) code = ErrorCode.BAD_USER_INPUT;
      else if (original === undefined) code = ErrorCode.GRAPHQL_VALIDATION_FAILED;
    }
    if (code !== undefined && CLIENT_CODES.has(code)) {
      const { stacktrace: _stack, http: _http, exception: _exception, validationErrors, ...rest } = formatted.extensions ?? {};
      return {
        message: formatted.message,
        ...(formatted.locations ? { locations: formatted.locations } : {}),
        ...(formatted.path ? { path: formatted.path } : {}),
        extensions: {
          ...rest,
          code,
          ...(validationErrors ? { validationErrors: simplifyValidationErrors(validationErrors) } : {}),
        },
      };
    }
    options.logger.error({ err: original ?? error, path: formatted.path }, 'unexpected error in operation');
    return {
      message: options.production ? 'Internal server error' : formatted.message,
      ...(formatted.locations ? { locations: formatted.locations } : {}),
      ...(formatted.path ? { path: formatted.path } : {}),
      extensions: { code: ErrorCode.INTERNAL_SERVER_ERROR },
    };
  };
}

interface ValidationErrorLike {
  property?: string;
  constraints?: Record<string, string>;
  children?: ValidationErrorLike[];
}

/** class-validator errors carry the whole input object (`target`); keep only what explains it. */
function simplifyValidationErrors(value: unknown): unknown {
  if (!Array.isArray(value)) return undefined;
  return (value as ValidationErrorLike[]).map((e) => ({
    property: e.property,
    constraints: e.constraints,
    ...(e.children && e.children.length > 0 ? { children: simplifyValidationErrors(e.children) } : {}),
  }));
}

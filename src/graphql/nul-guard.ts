/**
 * NUL characters in a request: PostgreSQL cannot store or compare text holding `\u0000`, so an id
 * or string argument with one would fail deep in a query as an internal error. Refused up front,
 * on HTTP and on the socket alike, as the client's mistake it is.
 */

import { GraphQLError, type ValidationRule } from 'graphql';

/** True when any string in `value` (a parsed JSON request, a query string) holds a NUL. */
export function containsNul(value: unknown, depth = 0): boolean {
  if (typeof value === 'string') return value.includes('\u0000');
  if (depth > 64 || value === null || typeof value !== 'object') return false;
  if (Array.isArray(value)) return value.some((item) => containsNul(item, depth + 1));
  return Object.entries(value).some(([key, item]) => key.includes('\u0000') || containsNul(item, depth + 1));
}

export const NUL_MESSAGE = 'Strings in a request must not contain NUL (\\u0000) characters';

/** The same for string literals written in the document itself (`device(id: "a\\u0000b")`). */
export const noNulStringsRule: ValidationRule = (context) => ({
  StringValue(node) {
    if (node.value.includes('\u0000')) context.reportError(new GraphQLError(NUL_MESSAGE, { nodes: [node] }));
  },
});

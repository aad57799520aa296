import { GraphQLJSONObject } from 'graphql-scalars';
import { GraphQLScalarType } from 'graphql';

/**
 * `JSON`: free-form platform data (an object). What reaches it was scrubbed at ingestion
 * (`scrubJson` in contracts/events.ts): never a stack trace, an e-mail or a `_trace`.
 */
export const JsonScalar = new GraphQLScalarType({
  ...GraphQLJSONObject.toConfig(),
  name: 'JSON',
  description: 'Free-form platform data (an object); never carries a stack trace, an e-mail or a trace header',
});

import { GraphQLScalarType, Kind } from 'graphql';
import { BadUserInputError } from '../../contracts/errors';

function toDate(value: unknown): Date | undefined {
  const date = value instanceof Date ? value : typeof value === 'string' ? new Date(value) : undefined;
  return date && !Number.isNaN(date.getTime()) ? date : undefined;
}

/** `DateTime`: an ISO-8601 instant in UTC (`2026-11-24T10:00:00.000Z`). */
export const DateTimeScalar = new GraphQLScalarType<Date, string>({
  name: 'DateTime',
  description: 'An ISO-8601 instant in UTC, e.g. 2026-11-24T10:00:00.000Z',
  serialize(value) {
    const date = toDate(value);
    if (!date) throw new TypeError(`DateTime cannot represent ${String(value)}`);
    return date.toISOString();
  },
  parseValue(value) {
    const date = toDate(value);
    if (!date) throw new BadUserInputError('DateTime must be an ISO-8601 string');
    return date;
  },
  parseLiteral(ast) {
    const date = ast.kind === Kind.STRING ? toDate(ast.value) : undefined;
    if (!date) throw new BadUserInputError('DateTime must be an ISO-8601 string');
    return date;
  },
});

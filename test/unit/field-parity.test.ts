/**
 * The quota limit and usage fields stand in the contract (validators), the GraphQL types and the
 * update input (decorators), and the Prisma model. This keeps them one list: a field added to one
 * place and not the others fails here.
 */
import { GraphQLFloat, GraphQLInt, getNamedType, type GraphQLInputObjectType, type GraphQLObjectType, type GraphQLType } from 'graphql';
import { QUOTA_LIMIT_FIELDS, QUOTA_USAGE_FIELDS } from '../../src/contracts/events';
import { Prisma } from '../../src/generated/prisma/client';
import { createSchema } from '../../src/schema';

const kinds = (type: GraphQLObjectType | GraphQLInputObjectType) =>
  Object.fromEntries(
    Object.values<{ name: string; type: GraphQLType }>(type.getFields()).map((f) => {
      const named = getNamedType(f.type);
      return [f.name, named === GraphQLInt ? 'int' : named === GraphQLFloat ? 'float' : named.name];
    }),
  );

it('QuotaLimits, QuotaLimitsInput and QuotaUsage match the contract field by field, Int for Int', async () => {
  const schema = await createSchema();
  expect(kinds(schema.getType('QuotaLimits') as GraphQLObjectType)).toEqual(QUOTA_LIMIT_FIELDS);
  expect(kinds(schema.getType('QuotaLimitsInput') as GraphQLInputObjectType)).toEqual(QUOTA_LIMIT_FIELDS);
  expect(kinds(schema.getType('QuotaUsage') as GraphQLObjectType)).toEqual(QUOTA_USAGE_FIELDS);
});

it('the Prisma Quota model has a column for every limit and usage field', () => {
  const columns = Object.keys(Prisma.QuotaScalarFieldEnum);
  for (const field of [...Object.keys(QUOTA_LIMIT_FIELDS), ...Object.keys(QUOTA_USAGE_FIELDS)]) {
    expect(columns).toContain(field);
  }
});

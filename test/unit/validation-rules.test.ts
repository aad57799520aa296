import { buildSchema, getIntrospectionQuery, parse, specifiedRules, validate } from 'graphql';
import { costLimitRule } from '../../src/graphql/validation-rules';

const schema = buildSchema(`
  type Node { id: ID! name: String child: Node children: [Node!]! }
  type Query { node: Node nodes: [Node!]! }
`);
const rule = costLimitRule({ maxDepth: 5, maxComplexity: 50 });
const errors = (query: string) => validate(schema, parse(query), [...specifiedRules, rule]);
const nest = (depth: number) =>
  `{ ${Array.from({ length: depth - 1 }, (_, i) => (i === 0 ? 'node {' : 'child {')).join(' ')} id ${'}'.repeat(depth - 1)} }`;

describe('depth and complexity rule', () => {
  it('passes documents within the limits', () => {
    expect(errors(nest(5))).toEqual([]);
    expect(errors('{ a: node { id } b: node { id name } nodes { id } }')).toEqual([]);
  });

  it('refuses a document deeper than the limit, with extensions.limit = depth', () => {
    const [error, ...rest] = errors(nest(6));
    expect(rest).toEqual([]);
    expect(error?.message).toBe('Query is too deep: depth 6 exceeds the limit of 5');
    expect(error?.extensions).toEqual({ limit: 'depth', max: 5, actual: 6 });
  });

  it('counts depth through fragments and inline fragments', () => {
    const query = `{ node { ...A } } fragment A on Node { child { ... on Node { child { ...B } } } } fragment B on Node { child { child { id } } }`;
    expect(errors(query).map((e) => e.extensions?.limit)).toEqual(['depth']);
  });

  it('refuses wide documents (aliases) with extensions.limit = complexity', () => {
    const wide = `{ ${Array.from({ length: 51 }, (_, i) => `a${i}: __typename`).join(' ')} }`;
    const [error] = errors(wide);
    expect(error?.extensions).toEqual({ limit: 'complexity', max: 50, actual: 51 });
  });

  it('expands fragment fan-out without exponential work (2^39 fields measured, not walked)', () => {
    // F0 spreads F1 twice, F1 spreads F2 twice, ...: 2^40 fields once expanded.
    const fragments = Array.from({ length: 40 }, (_, i) =>
      i === 39 ? `fragment F${i} on Node { id }` : `fragment F${i} on Node { ...F${i + 1} ... on Node { ...F${i + 1} } }`,
    ).join(' ');
    const result = validate(schema, parse(`{ node { ...F0 } } ${fragments}`), [rule]);
    expect(result.map((e) => e.extensions?.limit)).toEqual(['complexity']);
    expect(result[0]?.extensions?.actual).toBe(2 ** 39 + 1);
  });

  it('does not loop on fragment cycles (NoFragmentCycles reports them)', () => {
    const result = errors('{ node { ...A } } fragment A on Node { child { ...B } } fragment B on Node { child { ...A } }');
    expect(result.some((e) => /Cannot spread fragment/.test(e.message))).toBe(true);
  });

  it('lets the standard introspection query through a modest depth limit (ofType chains do not count)', () => {
    expect(validate(schema, parse(getIntrospectionQuery()), [costLimitRule({ maxDepth: 10, maxComplexity: 1_000 })])).toEqual([]);
  });
});

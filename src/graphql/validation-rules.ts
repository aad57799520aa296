/**
 * Cost limits on GraphQL documents, as validation rules applied to HTTP (Apollo
 * `validationRules`) and WebSocket (graphql-ws `onSubscribe`) alike, before anything executes:
 *
 * - depth: the deepest chain of nested fields (`GRAPHQL_MAX_DEPTH`);
 * - complexity: how many fields the document selects, fragments expanded where they are spread
 *   and aliases counted (`GRAPHQL_MAX_COMPLEXITY`), so "wide" documents (10,000 aliased
 *   `__typename`s) and fragment fan-out (each fragment spreading the next one twice) are refused.
 *
 * `ofType` (introspection's type-wrapper chain) adds no depth. Both are computed per operation with each fragment's cost memoized (linear in the document,
 * whatever its fan-out), and cycles (which `NoFragmentCyclesRule` reports) are not followed.
 * Errors are ordinary validation errors: `extensions.code` `GRAPHQL_VALIDATION_FAILED` (as
 * Apollo reports every validation error), with `extensions.limit` `depth` or `complexity`.
 * Document size is bounded before this by `GRAPHQL_MAX_TOKENS` (parser) and the body limits.
 */
import {
  GraphQLError,
  Kind,
  type ASTVisitor,
  type FragmentDefinitionNode,
  type SelectionSetNode,
  type ValidationContext,
  type ValidationRule,
} from 'graphql';

export interface CostLimits {
  readonly maxDepth: number;
  readonly maxComplexity: number;
}

interface Cost {
  readonly depth: number;
  readonly complexity: number;
}

/** Depth and complexity of a selection set, fragments expanded. */
export function measureSelectionSet(selectionSet: SelectionSetNode, fragments: ReadonlyMap<string, FragmentDefinitionNode>): Cost {
  const memo = new Map<string, Cost>();
  const visiting = new Set<string>();

  const measure = (set: SelectionSetNode): Cost => {
    let depth = 0;
    let complexity = 0;
    for (const selection of set.selections) {
      let cost: Cost;
      switch (selection.kind) {
        case Kind.FIELD: {
          const inner = selection.selectionSet ? measure(selection.selectionSet) : { depth: 0, complexity: 0 };
          // `__Type.ofType` chains (NonNull of List of ...) are single objects, not fan-out: the
          // standard introspection query nests them 7+ deep and must pass a modest depth limit.
          const own = selection.name.value === 'ofType' ? 0 : 1;
          cost = { depth: inner.depth + own, complexity: inner.complexity + 1 };
          break;
        }
        case Kind.INLINE_FRAGMENT:
          cost = measure(selection.selectionSet);
          break;
        case Kind.FRAGMENT_SPREAD:
          cost = fragmentCost(selection.name.value);
          break;
      }
      depth = Math.max(depth, cost.depth);
      // Saturate: fan-out may overflow a double long after the limit was passed.
      complexity = Math.min(complexity + cost.complexity, Number.MAX_SAFE_INTEGER);
    }
    return { depth, complexity };
  };

  const fragmentCost = (name: string): Cost => {
    const known = memo.get(name);
    if (known) return known;
    const fragment = fragments.get(name);
    if (!fragment || visiting.has(name)) return { depth: 0, complexity: 0 };
    visiting.add(name);
    const cost = measure(fragment.selectionSet);
    visiting.delete(name);
    memo.set(name, cost);
    return cost;
  };

  return measure(selectionSet);
}

/** The depth and complexity rule, with the configured limits. */
export function costLimitRule(limits: CostLimits): ValidationRule {
  return (context: ValidationContext): ASTVisitor => {
    const fragments = new Map<string, FragmentDefinitionNode>();
    for (const definition of context.getDocument().definitions) {
      if (definition.kind === Kind.FRAGMENT_DEFINITION) fragments.set(definition.name.value, definition);
    }
    return {
      OperationDefinition(node) {
        const { depth, complexity } = measureSelectionSet(node.selectionSet, fragments);
        if (depth > limits.maxDepth) {
          context.reportError(
            new GraphQLError(`Query is too deep: depth ${depth} exceeds the limit of ${limits.maxDepth}`, {
              nodes: [node],
              extensions: { limit: 'depth', max: limits.maxDepth, actual: depth },
            }),
          );
        }
        if (complexity > limits.maxComplexity) {
          context.reportError(
            new GraphQLError(`Query is too complex: it selects ${complexity} fields, more than the limit of ${limits.maxComplexity}`, {
              nodes: [node],
              extensions: { limit: 'complexity', max: limits.maxComplexity, actual: complexity },
            }),
          );
        }
        return false; // fragments were measured where they are spread
      },
    };
  };
}

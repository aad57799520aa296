/**
 * Events carry their entity (`DeviceStatusEvent.device`, ...) as plain data from the read model's
 * write, and the push fast path executes payloads without resolvers (push-delivery.ts). Fields of
 * the entity types that have a resolver of their own (`Device.installations`: a query per
 * device) have nothing to give there, and resolving them per delivery is the database query per
 * subscriber the design avoids. So a subscription may not select them, in the operation or in any
 * fragment it spreads: the error says which query gives them instead. Queries and mutations may.
 */
import { GraphQLError, OperationTypeNode, type FieldNode, type OperationDefinitionNode, type ValidationRule } from 'graphql';
import { FIELDS_NOT_ON_EVENTS } from '../contracts/entities';

export const eventSelectionRule: ValidationRule = (context) => {
  const subscriptions: OperationDefinitionNode[] = [];
  /** Offending fields by the fragment they are written in (reported if a subscription spreads it). */
  const inFragments = new Map<string, { node: FieldNode; message: string }[]>();
  let scope: { subscription: boolean } | { fragment: string } | undefined;
  const reported = new Set<FieldNode>();
  const report = (node: FieldNode, message: string) => {
    if (reported.has(node)) return;
    reported.add(node);
    context.reportError(new GraphQLError(message, { nodes: [node], extensions: { code: 'BAD_USER_INPUT' } }));
  };
  return {
    OperationDefinition(node) {
      scope = { subscription: node.operation === OperationTypeNode.SUBSCRIPTION };
      if (node.operation === OperationTypeNode.SUBSCRIPTION) subscriptions.push(node);
    },
    FragmentDefinition(node) {
      scope = { fragment: node.name.value };
    },
    Field(node) {
      const parent = context.getParentType();
      const instead = parent ? FIELDS_NOT_ON_EVENTS[parent.name]?.[node.name.value] : undefined;
      if (!parent || instead === undefined || !scope) return;
      const message = `${parent.name}.${node.name.value} cannot be selected in a subscription: events carry the entity's own fields only; ${instead}`;
      if ('fragment' in scope) {
        const list = inFragments.get(scope.fragment) ?? [];
        list.push({ node, message });
        inFragments.set(scope.fragment, list);
      } else if (scope.subscription) report(node, message);
    },
    Document: {
      leave() {
        for (const operation of subscriptions) {
          for (const fragment of context.getRecursivelyReferencedFragments(operation)) {
            for (const { node, message } of inFragments.get(fragment.name.value) ?? []) report(node, message);
          }
        }
      },
    },
  };
};

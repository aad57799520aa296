/**
 * Random but valid-looking subscription selections for comparing two executors on the same
 * documents (test/unit/compiled-execution.test.ts): seeded, so a failure names its document.
 */
import { getNamedType, isObjectType, type GraphQLObjectType, type GraphQLSchema } from 'graphql';
import { FIELDS_NOT_ON_EVENTS } from '../../src/contracts/entities';

/** A seeded pseudo-random generator in [0, 1): the same documents on every run. */
export function mulberry32(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * A subscription document on `field`: random fields of the event (nested objects to depth 2),
 * repeated, aliased, in named and inline fragments (on the type, on RealtimeEvent, untyped),
 * under @skip/@include by variables and literals; with the variables' values.
 */
export function generateDocument(
  s: GraphQLSchema,
  field: string,
  random: () => number,
): { source: string; variables: Record<string, boolean> } {
  const pick = <T>(list: readonly T[]) => list[Math.floor(random() * list.length)] as T;
  const variables: Record<string, boolean> = {};
  const fragments: string[] = [];
  let aliases = 0;
  const condition = () => {
    const r = random();
    if (r < 0.55) return '';
    if (r < 0.65) return ` @${pick(['skip', 'include'])}(if: ${pick(['true', 'false'])})`;
    const name = `v${Math.floor(random() * 4)}`;
    variables[name] ??= random() < 0.5;
    return ` @${pick(['skip', 'include'])}(if: $${name})`;
  };
  const selectionsOf = (type: GraphQLObjectType, depth: number): string => {
    const available = Object.values(type.getFields()).filter((f) => FIELDS_NOT_ON_EVENTS[type.name]?.[f.name] === undefined);
    const parts: string[] = [];
    const count = 1 + Math.floor(random() * 6);
    for (let i = 0; i < count; i++) {
      const r = random();
      if (r < 0.1) {
        parts.push(`__typename${condition()}`);
        continue;
      }
      if (r < 0.18 && depth < 2) {
        const on = type.getInterfaces().length > 0 && random() < 0.5 ? 'RealtimeEvent' : random() < 0.5 ? type.name : '';
        const inner =
          on === 'RealtimeEvent' ? pick(['eventId', 'type', 'userId', 'occurredAt', '__typename']) : selectionsOf(type, depth + 1);
        parts.push(`...${on ? ` on ${on}` : ''}${condition()} { ${inner} }`);
        continue;
      }
      if (r < 0.24 && depth < 2) {
        const name = `F${fragments.length}`;
        fragments.push(`fragment ${name} on ${type.name} { ${selectionsOf(type, depth + 1)} }`);
        parts.push(`...${name}${condition()}`);
        continue;
      }
      const chosen = pick(available);
      const named = getNamedType(chosen.type);
      const alias = random() < 0.2 ? `a${aliases++}: ` : '';
      if (isObjectType(named)) {
        if (depth >= 2) continue;
        parts.push(`${alias}${chosen.name}${condition()} { ${selectionsOf(named, depth + 1)} }`);
      } else {
        parts.push(`${alias}${chosen.name}${condition()}`);
      }
    }
    // Never an empty selection set: one unconditional field last.
    parts.push(isObjectType(getNamedType(available[0]!.type)) ? '__typename' : available[0]!.name);
    return parts.join(' ');
  };
  const type = getNamedType(s.getSubscriptionType()!.getFields()[field]!.type) as GraphQLObjectType;
  const body = selectionsOf(type, 0);
  const names = Object.keys(variables);
  const definitions = names.length > 0 ? `(${names.map((name) => `$${name}: Boolean!`).join(', ')})` : '';
  return { source: `subscription${definitions} { ${field} { ${body} } } ${fragments.join(' ')}`, variables };
}

/**
 * Subscriptions may select the entity an event carries, but not the entity fields that need a
 * resolver of their own (there is nothing to give them on the push fast path).
 */
import 'reflect-metadata';
import { parse, specifiedRules, validate, type GraphQLSchema } from 'graphql';
import { createSchema } from '../../src/schema';
import { eventSelectionRule } from '../../src/graphql/event-selection-rule';

let schema: GraphQLSchema;
beforeAll(async () => {
  schema = await createSchema();
});

const errorsOf = (source: string) => validate(schema, parse(source), [...specifiedRules, eventSelectionRule]).map((e) => e.message);

describe('eventSelectionRule', () => {
  it('lets a subscription select the entity an event carries', () => {
    expect(errorsOf('subscription { deviceStatusChanged { eventId device { id status version } } }')).toEqual([]);
    expect(errorsOf('subscription { quotaChanged { quota { id limits { maxDevices } usage { currentDevices } } } }')).toEqual([]);
  });

  it('refuses Device.installations in a subscription, directly or through nested fragments, and names the query to use', () => {
    const direct = errorsOf('subscription { deviceStatusChanged { device { id installations { id } } } }');
    expect(direct).toEqual([
      expect.stringMatching(/^Device\.installations cannot be selected in a subscription.*appInstallations\(deviceId\)/),
    ]);
    const nested = errorsOf(`subscription { deviceStatusChanged { ...E } }
      fragment E on DeviceStatusEvent { device { ...D } }
      fragment D on Device { id installations { id } }`);
    expect(nested).toHaveLength(1);
    expect(nested[0]).toMatch(/^Device\.installations cannot be selected/);
  });

  it('leaves queries alone, even when they share the fragment', () => {
    expect(errorsOf('query { device(id: "d1") { id installations { id } } }')).toEqual([]);
    expect(
      errorsOf(`query Q { device(id: "d1") { ...D } }
        subscription S { deviceStatusChanged { device { ...D } } }
        fragment D on Device { id installations { id } }`),
    ).toHaveLength(1);
  });
});

import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { createSchema, printSchemaSdl } from '../../src/schema';

it('schema/schema.graphql is what the code builds (run `npm run schema` when this fails)', async () => {
  const committed = await readFile(path.resolve(__dirname, '../../schema/schema.graphql'), 'utf8');
  expect(printSchemaSdl(await createSchema())).toBe(committed);
});

it('exposes the contract\'s subscription signatures, each with after: ID (issue 8)', async () => {
  const fields = (await createSchema()).getSubscriptionType()?.getFields() ?? {};
  const signature = (name: string) => {
    const field = fields[name];
    if (!field) return `${name} missing`;
    const args = field.args.map((arg) => `${arg.name}: ${String(arg.type)}`).sort();
    return `${name}(${args.join(', ')}): ${String(field.type)}`;
  };
  expect(Object.keys(fields).sort().map(signature)).toEqual([
    'appInstalled(after: ID, deviceId: ID, userId: ID): AppInstalledEvent!',
    'deviceStatusChanged(after: ID, deviceId: ID, userId: ID): DeviceStatusEvent!',
    'orderCompleted(after: ID, userId: ID): OrderCompletedEvent!',
    'quotaChanged(after: ID, userId: ID): QuotaEvent!',
  ]);
});

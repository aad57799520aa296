import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { createSchema, printSchemaSdl } from '../../src/schema';

it('schema/schema.graphql is what the code builds (run `npm run schema` when this fails)', async () => {
  const committed = await readFile(path.resolve(__dirname, '../../schema/schema.graphql'), 'utf8');
  expect(printSchemaSdl(await createSchema())).toBe(committed);
});

it("exposes the contract's subscription signatures, each with after: ID (issue 8, CONTRACT §7)", async () => {
  const fields = (await createSchema()).getSubscriptionType()?.getFields() ?? {};
  const signature = (name: string) => {
    const field = fields[name];
    if (!field) return `${name} missing`;
    const args = field.args.map((arg) => `${arg.name}: ${String(arg.type)}`).sort();
    return `${name}(${args.join(', ')}): ${String(field.type)}`;
  };
  expect(Object.keys(fields).sort().map(signature)).toEqual([
    'appInstallationChanged(after: ID, deviceId: ID, userId: ID): AppInstallationEvent!',
    'appInstalled(after: ID, deviceId: ID, userId: ID): AppInstalledEvent!',
    'billingChanged(after: ID, userId: ID): BillingEvent!',
    'deviceNotice(after: ID, deviceId: ID, userId: ID): DeviceNoticeEvent!',
    'deviceStatusChanged(after: ID, deviceId: ID, userId: ID): DeviceStatusEvent!',
    'notifications(after: ID): NotificationEvent!',
    'orderCompleted(after: ID, userId: ID): OrderCompletedEvent!',
    'orderStatusChanged(after: ID, orderId: ID, userId: ID): OrderStatusEvent!',
    'quotaChanged(after: ID, userId: ID): QuotaEvent!',
    'systemEvents(after: ID): SystemEvent!',
  ]);
});

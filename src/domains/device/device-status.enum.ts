import { registerEnumType } from 'type-graphql';
import { DEVICE_STATUSES } from '../../contracts/events';

/** A cloud phone's lifecycle state (docs/event-catalogue.md); one GraphQL enum for events and entities alike. */
export const DeviceStatus = Object.fromEntries(DEVICE_STATUSES.map((s) => [s, s])) as {
  [K in (typeof DEVICE_STATUSES)[number]]: K;
};
export type DeviceStatus = (typeof DEVICE_STATUSES)[number];
registerEnumType(DeviceStatus, { name: 'DeviceStatus', description: "A cloud phone's lifecycle state" });

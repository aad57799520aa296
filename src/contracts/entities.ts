/**
 * The entity an event carries: the read model's row as it stands after the event was applied,
 * in the shape the queries return (`Device`, `Quota`, `Order`, `AppInstallation`), so that a
 * client's normalized cache (keyed by `__typename` + `id`) updates every query showing it. They
 * travel inside the event through pub/sub as JSON: instants are ISO-8601 strings, every field a
 * plain property (the push fast path executes payloads without resolvers).
 *
 * Null when the read model has no row to show: a quota deleted (`quota.deleted`), an app event
 * whose installation the read model never learnt, or a gateway without a read model.
 * docs/decisions/0500-events-carry-their-entity.md.
 */
import type { DeviceStatus, QuotaStatus } from './events';

/** The states of the read model's rows, as the entity types' GraphQL enums name them. */
export type OrderEntityStatus = 'PENDING' | 'COMPLETED' | 'CANCELLED' | 'PAID' | 'REFUNDED' | 'FAILED';
export type InstallationEntityStatus = 'INSTALLING' | 'INSTALLED' | 'FAILED' | 'UNINSTALLED' | 'UNINSTALLING';

/** The read model's `Device` (the type `device(id)` returns). */
export interface DeviceEntity {
  readonly id: string;
  readonly userId: string;
  readonly name: string;
  readonly status: DeviceStatus;
  readonly providerType: string | null;
  readonly cpuCores: number | null;
  readonly memoryMB: number | null;
  readonly storageGB: number | null;
  readonly statusReason: string | null;
  /** Failover details of the last status change. */
  readonly failureType: string | null;
  readonly recoveryStrategy: string | null;
  readonly recoveryAttempts: number | null;
  readonly version: number;
  readonly createdAt: string;
  readonly updatedAt: string;
}

/** The read model's `Quota` (the type `quota` returns); `limits`/`usage` fields absent when null. */
export interface QuotaEntity {
  readonly id: string;
  readonly userId: string;
  readonly planId: string | null;
  readonly status: QuotaStatus;
  readonly limits: Readonly<Record<string, number>>;
  readonly usage: Readonly<Record<string, number>>;
  readonly validFrom: string | null;
  readonly validUntil: string | null;
  readonly autoRenew: boolean;
  readonly version: number;
  readonly updatedAt: string;
}

/** The read model's `Order`; `amount` a decimal string with two places. */
export interface OrderEntity {
  readonly id: string;
  readonly userId: string;
  readonly status: OrderEntityStatus;
  readonly amount: string | null;
  readonly deviceId: string | null;
  readonly planId: string | null;
  readonly completedAt: string | null;
  readonly cancelledAt: string | null;
  readonly statusReason: string | null;
  readonly version: number;
  readonly createdAt: string;
  readonly updatedAt: string;
}

/** The read model's `AppInstallation`. */
export interface AppInstallationEntity {
  readonly id: string;
  readonly deviceId: string;
  readonly userId: string;
  readonly appId: string | null;
  readonly packageName: string | null;
  readonly versionName: string | null;
  readonly status: InstallationEntityStatus;
  readonly installedAt: string | null;
  readonly uninstalledAt: string | null;
  readonly error: string | null;
  readonly version: number;
  readonly updatedAt: string;
}

/**
 * Fields of the entity types that have their own resolver (a query of their own per entity)
 * and so cannot be selected on an event: the push fast path executes payloads from the event's
 * plain properties, with no database. Selecting one in a subscription is a validation error
 * that names the query to use instead.
 */
export const FIELDS_NOT_ON_EVENTS: Readonly<Record<string, Readonly<Record<string, string>>>> = {
  Device: { installations: 'query appInstallations(deviceId) or device(id) { installations } for them' },
  Order: { statusHistory: 'query order(id) { statusHistory } for it' },
};

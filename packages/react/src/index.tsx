/**
 * @cloudphone/realtime-react: React 19 bindings for @cloudphone/realtime-client. Each hook loads
 * state with a query, subscribes to the matching events, and returns the latest event, the entity
 * (from Apollo's normalized cache, which the events' entities update by themselves) and the
 * connection state. What the cache cannot learn from an entity alone, the hooks write: a device
 * that appears or is deleted joins or leaves the `devices` list, a deleted quota becomes null.
 * Across reconnects the client resumes with `after`; on HISTORY_EXPIRED it refetches the active
 * queries, these included.
 */
import { ApolloProvider, useQuery, useSubscription } from '@apollo/client/react';
import {
  AppInstallationChangedDocument,
  AppInstalledDocument,
  BillingChangedDocument,
  DeviceDocument,
  DevicesDocument,
  DeviceStatusChangedDocument,
  OrderCompletedDocument,
  OrderStatusChangedDocument,
  QuotaChangedDocument,
  QuotaDocument,
  type AppInstallationChangedSubscription,
  type AppInstallationFieldsFragment,
  type AppInstalledSubscription,
  type BillingChangedSubscription,
  type ConnectionState,
  type DeviceFieldsFragment,
  type DevicesQuery,
  type DeviceStatusChangedSubscription,
  type OrderCompletedSubscription,
  type OrderFieldsFragment,
  type OrderStatusChangedSubscription,
  type QuotaChangedSubscription,
  type QuotaFieldsFragment,
  type RealtimeClient,
} from '@cloudphone/realtime-client';
import { createContext, useContext, useState, useSyncExternalStore, type ReactNode } from 'react';

const ClientContext = createContext<RealtimeClient | null>(null);

/** Makes `client` (from createRealtimeClient) available to the hooks and to Apollo's own hooks. */
export function RealtimeProvider({ client, children }: { readonly client: RealtimeClient; readonly children?: ReactNode }) {
  return (
    <ClientContext.Provider value={client}>
      <ApolloProvider client={client}>{children}</ApolloProvider>
    </ClientContext.Provider>
  );
}

/** The client the nearest RealtimeProvider gives. */
export function useRealtimeClient(): RealtimeClient {
  const client = useContext(ClientContext);
  if (!client) throw new Error('useRealtimeClient: wrap the component in <RealtimeProvider client={createRealtimeClient(...)}>');
  return client;
}

/** connecting, connected, reconnecting (with attempt), offline: re-renders on every change. */
export function useConnectionState(): ConnectionState {
  const { realtime } = useRealtimeClient();
  return useSyncExternalStore(
    (onChange) => {
      const subscription = realtime.connectionState$.subscribe(onChange);
      return () => subscription.unsubscribe();
    },
    realtime.connectionState,
    realtime.connectionState,
  );
}

type EventOf<S> = S extends Record<string, infer E> ? E : never;

export interface RealtimeResult<E, T> {
  /** The latest event received (undefined until one arrives). */
  readonly event: E | undefined;
  /** The entity as the cache holds it now (query result, updated by every event). */
  readonly entity: T;
  readonly connection: ConnectionState;
  /** The initial query is loading. */
  readonly loading: boolean;
  readonly error: Error | undefined;
}

/** A user's quota (userId defaults to the caller), kept current by quotaChanged. */
export function useRealtimeQuota(
  userId?: string,
): RealtimeResult<EventOf<QuotaChangedSubscription>, QuotaFieldsFragment | null | undefined> {
  const connection = useConnectionState();
  const variables = { userId: userId ?? null };
  const query = useQuery(QuotaDocument, { variables });
  const subscription = useSubscription(QuotaChangedDocument, {
    variables,
    onData: ({ client, data }) => {
      const event = data.data?.quotaChanged;
      // A deleted quota has no entity to normalize: what `quota` answers for it now is null.
      if (event?.kind === 'DELETED') client.cache.writeQuery({ query: QuotaDocument, variables, data: { quota: null } });
    },
  });
  return {
    event: subscription.data?.quotaChanged,
    entity: query.data?.quota,
    connection,
    loading: query.loading,
    error: query.error ?? subscription.error,
  };
}

export interface DeviceResult extends RealtimeResult<EventOf<DeviceStatusChangedSubscription>, DeviceFieldsFragment | null | undefined> {
  /** Without deviceId: the user's devices (all but DELETED, newest first), kept current. */
  readonly devices: readonly DeviceFieldsFragment[];
}

/**
 * One device (`deviceId`) or a user's devices (userId defaults to the caller), kept current by
 * deviceStatusChanged: status changes update the cache by themselves; a device first seen in an
 * event joins the list, a DELETED one leaves it.
 */
export function useRealtimeDevice(
  options: {
    deviceId?: string;
    userId?: string;
    /** Called once per event, in order (renders may skip events that arrive together; this never does). */
    onEvent?: (event: EventOf<DeviceStatusChangedSubscription>) => void;
  } = {},
): DeviceResult {
  const connection = useConnectionState();
  const one = useQuery(DeviceDocument, { variables: { id: options.deviceId ?? '' }, skip: options.deviceId === undefined });
  const listVariables = { userId: options.userId ?? null, first: 100 };
  const list = useQuery(DevicesDocument, { variables: listVariables, skip: options.deviceId !== undefined });
  const subscription = useSubscription(DeviceStatusChangedDocument, {
    variables: { userId: options.userId ?? null, deviceId: options.deviceId ?? null },
    onData: ({ client, data }) => {
      const event = data.data?.deviceStatusChanged;
      if (!event) return;
      options.onEvent?.(event);
      const device = event.device;
      if (!device) {
        // Only an event replayed from the durable log after a Redis restart comes without its
        // device (docs/decisions/0500): the one case where the cache cannot update by itself.
        void client.refetchQueries({ include: [options.deviceId !== undefined ? DeviceDocument : DevicesDocument] });
        return;
      }
      if (options.deviceId !== undefined) return;
      client.cache.updateQuery<DevicesQuery>({ query: DevicesDocument, variables: listVariables }, (current) => {
        if (!current) return current;
        const edges = current.devices.edges;
        const listed = edges.some((edge) => edge.node.id === device.id);
        if (device.status === 'DELETED') {
          return listed ? { devices: { ...current.devices, edges: edges.filter((edge) => edge.node.id !== device.id) } } : current;
        }
        if (listed) return current; // the entity already updated the listed node
        return { devices: { ...current.devices, edges: [{ __typename: 'DeviceEdge', cursor: device.id, node: device }, ...edges] } };
      });
    },
  });
  const devices = list.data?.devices.edges.map((edge) => edge.node) ?? [];
  return {
    event: subscription.data?.deviceStatusChanged,
    entity: options.deviceId !== undefined ? one.data?.device : undefined,
    devices,
    connection,
    loading: options.deviceId !== undefined ? one.loading : list.loading,
    error: (options.deviceId !== undefined ? one.error : list.error) ?? subscription.error,
  };
}

export interface BillingResult extends RealtimeResult<
  EventOf<OrderCompletedSubscription> | EventOf<OrderStatusChangedSubscription> | EventOf<BillingChangedSubscription>,
  OrderFieldsFragment | null | undefined
> {
  /** The latest of each subscription. */
  readonly orderCompleted: EventOf<OrderCompletedSubscription> | undefined;
  readonly orderStatus: EventOf<OrderStatusChangedSubscription> | undefined;
  readonly billing: EventOf<BillingChangedSubscription> | undefined;
}

/**
 * A user's billing (userId defaults to the caller): orderCompleted, orderStatusChanged and
 * billingChanged. `event` is the latest of the three; `entity` the order the latest order event
 * carried (normalized into the cache: every query showing that order updates by itself).
 */
export function useRealtimeBilling(userId?: string): BillingResult {
  const connection = useConnectionState();
  const variables = { userId: userId ?? null };
  const [latest, setLatest] = useState<BillingResult['event']>();
  const completed = useSubscription(OrderCompletedDocument, {
    variables,
    onData: ({ data }) => data.data && setLatest(data.data.orderCompleted),
  });
  const status = useSubscription(OrderStatusChangedDocument, {
    variables,
    onData: ({ data }) => data.data && setLatest(data.data.orderStatusChanged),
  });
  const billing = useSubscription(BillingChangedDocument, {
    variables,
    onData: ({ data }) => data.data && setLatest(data.data.billingChanged),
  });
  const order = latest && 'order' in latest ? latest.order : undefined;
  return {
    event: latest,
    entity: order,
    orderCompleted: completed.data?.orderCompleted,
    orderStatus: status.data?.orderStatusChanged,
    billing: billing.data?.billingChanged,
    connection,
    loading: false,
    error: completed.error ?? status.error ?? billing.error,
  };
}

export interface AppResult extends RealtimeResult<
  EventOf<AppInstalledSubscription> | EventOf<AppInstallationChangedSubscription>,
  AppInstallationFieldsFragment | null | undefined
> {
  readonly installed: EventOf<AppInstalledSubscription> | undefined;
  readonly lifecycle: EventOf<AppInstallationChangedSubscription> | undefined;
}

/**
 * Apps on a user's devices, or one device's: appInstalled and appInstallationChanged. `event` is
 * the latest of the two; `entity` the installation it carried (normalized into the cache).
 */
export function useRealtimeApp(options: { deviceId?: string; userId?: string } = {}): AppResult {
  const connection = useConnectionState();
  const variables = { userId: options.userId ?? null, deviceId: options.deviceId ?? null };
  const [latest, setLatest] = useState<AppResult['event']>();
  const installed = useSubscription(AppInstalledDocument, {
    variables,
    onData: ({ data }) => data.data && setLatest(data.data.appInstalled),
  });
  const lifecycle = useSubscription(AppInstallationChangedDocument, {
    variables,
    onData: ({ data }) => data.data && setLatest(data.data.appInstallationChanged),
  });
  return {
    event: latest,
    entity: latest?.installation,
    installed: installed.data?.appInstalled,
    lifecycle: lifecycle.data?.appInstallationChanged,
    connection,
    loading: false,
    error: installed.error ?? lifecycle.error,
  };
}

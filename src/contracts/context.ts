/**
 * The GraphQL context, built once per HTTP request (Apollo) or per WebSocket operation
 * (graphql-ws: Apollo's context function is not called there, apollo-server #2296).
 */
import type { EventPubSub } from './ports';
import type { Topics } from './topics';
import type { AppInstallationService } from '../domains/app/app-installation.service';
import type { AnnouncementService } from '../domains/notification/announcement.service';
import type { DeviceService } from '../domains/device/device.service';
import type { OrderService } from '../domains/order/order.service';
import type { QuotaService } from '../domains/quota/quota.service';
import type { AuthUser } from '../auth/auth-user';

export interface Services {
  readonly quota: QuotaService;
  readonly devices: DeviceService;
  readonly orders: OrderService;
  readonly apps: AppInstallationService;
  readonly announcements: AnnouncementService;
  readonly pubsub: EventPubSub;
  readonly topics: Topics;
  /** Called when a subscription starts (after pub/sub confirmed) and ends. */
  readonly onSubscriptionChange: (field: string, delta: 1 | -1) => void;
  /** Called as a subscription hands one event to its client (metrics: count and latency). */
  readonly onEventDelivered?: (field: string, event: { readonly occurredAt: string }) => void;
}

/** The socket an operation runs on (WebSocket only). */
export interface ConnectionControl {
  /** The client cannot keep up: close its socket with 1013 and release its subscriptions. */
  slowConsumer(reason: string): void;
}

export interface GraphQLContext {
  /** Null on HTTP without a token; always set on a socket (unauthenticated sockets are closed). */
  readonly user: AuthUser | null;
  readonly services: Services;
  /** Set on WebSocket operations. */
  readonly connection?: ConnectionControl;
}

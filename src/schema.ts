/**
 * Builds the one GraphQL schema from the type-graphql resolvers. `schema/schema.graphql` is its
 * printed form, committed; `npm run schema` rewrites it and a test fails when it is stale.
 */
import 'reflect-metadata';
import { lexicographicSortSchema, printSchema, type GraphQLSchema } from 'graphql';
import { buildSchema, type PubSub } from 'type-graphql';
import { authChecker } from './auth/authorization';
import { AppEventResolver } from './domains/app/app-event.resolver';
import { AppInstallationResolver } from './domains/app/app-installation.resolver';
import { DeviceEventResolver } from './domains/device/device-event.resolver';
import { DeviceResolver } from './domains/device/device.resolver';
import { OrderEventResolver } from './domains/order/order-event.resolver';
import { OrderResolver } from './domains/order/order.resolver';
import { QuotaResolver } from './domains/quota/quota.resolver';
import { SessionResolver } from './domains/session/session.resolver';
import { MeResolver } from './domains/user/me.resolver';
import { BillingEventResolver } from './domains/billing/billing-event.resolver';
import { NotificationResolver } from './domains/notification/notification.resolver';
import { SystemEventResolver } from './domains/system/system-event.resolver';

/**
 * type-graphql refuses to build subscriptions without a `pubSub`. Ours never use it: each
 * subscription's `subscribe` picks its topic from the caller's token and reads the gateway's own
 * `EventPubSub` from the context (authorization per operation), so this one only says so if a
 * future resolver reaches for `topics:` by mistake.
 */
const topicsUnsupported: PubSub = {
  publish() {
    throw new Error('publish through EventPubSub (contracts/ports.ts), not type-graphql topics');
  },
  subscribe() {
    throw new Error('use @Subscription({ subscribe }) with EventPubSub, not type-graphql topics');
  },
};

export async function createSchema(): Promise<GraphQLSchema> {
  return buildSchema({
    resolvers: [
      QuotaResolver,
      DeviceEventResolver,
      OrderEventResolver,
      AppEventResolver,
      MeResolver,
      DeviceResolver,
      OrderResolver,
      AppInstallationResolver,
      BillingEventResolver,
      NotificationResolver,
      SystemEventResolver,
      SessionResolver,
    ],
    authChecker,
    pubSub: topicsUnsupported,
    // Validate inputs with class-validator; absent or null optional fields are not validated.
    validate: { forbidUnknownValues: false, skipMissingProperties: true },
  });
}

/** The SDL committed as schema/schema.graphql. */
export function printSchemaSdl(schema: GraphQLSchema): string {
  return `${printSchema(lexicographicSortSchema(schema))}\n`;
}

/**
 * @cloudphone/realtime-client: an Apollo Client 4 for the cloudphone-realtime gateway, and typed
 * documents (TypedDocumentNode) for every subscription, query and mutation it serves.
 */
export {
  createRealtimeClient,
  tokenExpiry,
  type RealtimeClient,
  type RealtimeClientOptions,
  type RealtimeControls,
} from './realtime-client.js';
export type { ConnectionState } from './connection-state.js';
export { HISTORY_EXPIRED, ResumingWsLink, type HistoryExpired } from './resuming-ws-link.js';
export * from './generated/graphql.js';

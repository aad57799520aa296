/**
 * The client side of resuming, exactly as docs/resuming.md shows it (a unit test keeps the two equal):
 * the frontend copies this function.
 */
// README:withResume:start
import type { Client, Sink } from 'graphql-ws';

/**
 * Wraps a graphql-ws client so that every subscription resumes where it left off after a
 * reconnect. graphql-ws re-sends the SAME payload object each time it retries (network blip,
 * 4403 token refresh, 1001 deploy, a killed instance), so keeping `variables.after` set to the
 * last `eventId` received is all it takes. Select `eventId` in every subscription.
 */
export function withResume(client: Client): Client {
  return {
    ...client,
    subscribe(payload, sink: Sink) {
      // Our own copy: the caller's variables (Apollo's operation) are never changed.
      const resumable = { ...payload, variables: { ...payload.variables } };
      return client.subscribe(resumable, {
        next(result) {
          // A subscription has exactly one root field: the event.
          const event = result.data ? Object.values(result.data)[0] : undefined;
          const eventId = (event as { eventId?: unknown } | null | undefined)?.eventId;
          if (typeof eventId === 'string') resumable.variables.after = eventId;
          sink.next(result);
        },
        error: (error) => sink.error(error),
        complete: () => sink.complete(),
      });
    },
  };
}
// README:withResume:end

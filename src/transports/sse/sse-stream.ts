/**
 * GraphQL over Server-Sent Events, graphql-sse's PROTOCOL.md "distinct connections mode": one
 * operation per `text/event-stream` response, `event: next` with the execution result as `data`
 * (each pushed event carrying `id: <eventId>`, so a browser's `EventSource` reconnects with
 * `Last-Event-ID` = `after`), `event: complete` at the end. Errors after the stream opened travel
 * as a `next` whose data has `errors`, then `complete`, as the protocol prescribes (the graphql-sse
 * client rejects any other event name). At shutdown the stream ends without `complete`, so both
 * `EventSource` and the graphql-sse client reconnect (to another instance).
 */
import type { GraphQLFormattedError } from 'graphql';
import type { GatewayEvent } from '../../contracts/events';
import type { WireResult } from '../../graphql/operation-layer';
import { HttpStream } from '../http/http-stream';

const COMPLETE = 'event: complete\ndata:\n\n';

/** True when `accept` asks for an event stream. */
export function acceptsEventStream(accept: string | undefined): boolean {
  return !!accept && accept.split(',').some((range) => range.split(';')[0]?.trim().toLowerCase() === 'text/event-stream');
}

export class SseStream extends HttpStream {
  readonly transport = 'sse' as const;

  protected open(): void {
    this.res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-store',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    this.res.write(':\n\n');
  }

  protected frameNext(payload: string, event: GatewayEvent): string {
    // Event ids are validated (contracts/events.ts); a line break would still end the field early.
    return `id: ${event.eventId.replace(/[\r\n]/g, '')}\nevent: next\ndata: ${payload}\n\n`;
  }

  protected frameResult(result: WireResult): string {
    return `event: next\ndata: ${JSON.stringify(result)}\n\n`;
  }

  protected frameErrors(errors: readonly GraphQLFormattedError[]): string {
    return `event: next\ndata: ${JSON.stringify({ errors })}\n\n${COMPLETE}`;
  }

  protected frameHeartbeat(): string {
    return ':\n\n';
  }

  protected frameEnd(): string {
    return COMPLETE;
  }

  protected frameShutdown(): string {
    return '';
  }
}

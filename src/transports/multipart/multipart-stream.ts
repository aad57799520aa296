/**
 * Apollo's multipart subscription protocol (what Apollo Client's `HttpLink` and Apollo Router
 * speak): `multipart/mixed; boundary="graphql"; subscriptionSpec="1.0"`, each part a JSON object:
 * `{"payload": <ExecutionResult>}`, `{}` as the heartbeat, `{"payload": null, "errors": [...]}`
 * for an error of the transport (token expired, revoked, slow, shutting down), then the closing
 * boundary. The boundary is sent quoted: Apollo Client 4.3 misreads some unquoted ones.
 */
import type { GraphQLFormattedError } from 'graphql';
import { ErrorCode } from '../../contracts/errors';
import type { WireResult } from '../../graphql/operation-layer';
import { HttpStream, streamError } from '../http/http-stream';

export const MULTIPART_CONTENT_TYPE = 'multipart/mixed; boundary="graphql"; subscriptionSpec="1.0"';

const part = (json: string) => `\r\ncontent-type: application/json; charset=utf-8\r\n\r\n${json}\r\n--graphql`;
const CLOSE = '--\r\n';

/** True when `accept` asks for the multipart subscription protocol (`subscriptionSpec` quoted or not). */
export function acceptsMultipartSubscription(accept: string | undefined): boolean {
  if (!accept) return false;
  return accept.split(',').some((range) => {
    const [type, ...params] = range.split(';').map((piece) => piece.trim().toLowerCase());
    return type === 'multipart/mixed' && params.some((param) => /^subscriptionspec\s*=\s*"?1\.0"?$/.test(param));
  });
}

export class MultipartStream extends HttpStream {
  readonly transport = 'multipart' as const;

  protected open(): void {
    this.res.writeHead(200, { 'content-type': MULTIPART_CONTENT_TYPE, 'cache-control': 'no-cache, no-store', 'x-accel-buffering': 'no' });
    // The first boundary and a heartbeat at once: the client sees the stream open.
    this.res.write(`\r\n--graphql${part('{}')}`);
  }

  protected frameNext(payload: string): string {
    return part(`{"payload":${payload}}`);
  }

  protected frameResult(result: WireResult): string {
    return part(`{"payload":${JSON.stringify(result)}}`);
  }

  protected frameErrors(errors: readonly GraphQLFormattedError[]): string {
    return `${part(`{"payload":null,"errors":${JSON.stringify(errors)}}`)}${CLOSE}`;
  }

  protected frameHeartbeat(): string {
    return part('{}');
  }

  protected frameEnd(): string {
    return CLOSE;
  }

  protected frameShutdown(): string {
    return this.frameErrors([streamError(ErrorCode.SHUTTING_DOWN, 'Going away: the server is shutting down; reconnect')]);
  }
}

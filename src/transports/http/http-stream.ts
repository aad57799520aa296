/**
 * One subscription streamed over one HTTP response (multipart or SSE): the session's sink and
 * transport for a single operation, with what both streaming transports share: the heartbeat,
 * backpressure (events wait in the subscription's bounded buffer while the TCP socket's send
 * buffer is full; past `maxBufferedBytes` unsent bytes, or a buffer overflow, the stream ends with
 * SLOW_CONSUMER and the socket is destroyed after `slowCloseGraceMs`), the end at token expiry
 * (TOKEN_EXPIRED), at revocation (SESSION_REVOKED) and at shutdown. Subclasses only frame
 * (../../transports/multipart, ../../transports/sse).
 */
import type { ServerResponse } from 'node:http';
import type { GraphQLFormattedError } from 'graphql';
import type { TransportName } from '../../contracts/context';
import { ErrorCode } from '../../contracts/errors';
import type { GatewayEvent } from '../../contracts/events';
import type {
  OperationLayer,
  OperationRef,
  OperationRequest,
  OperationSink,
  Session,
  SessionTransport,
  WireResult,
} from '../../graphql/operation-layer';

export interface HttpStreamOptions {
  /** Heartbeat interval (a multipart `{}` part, an SSE comment). */
  readonly heartbeatMs: number;
  /** `WS_MAX_BUFFERED_BYTES`: unsent bytes a stream may hold before it ends with SLOW_CONSUMER. */
  readonly maxBufferedBytes: number;
  /** `WS_SLOW_CLOSE_GRACE_MS`: after a slow-consumer end, time before the socket is destroyed. */
  readonly slowCloseGraceMs: number;
}

/** The streams open on this instance, so shutdown can end them (clients reconnect elsewhere). */
export class StreamRegistry {
  private readonly streams = new Set<HttpStream>();

  add(stream: HttpStream): void {
    this.streams.add(stream);
  }

  delete(stream: HttpStream): void {
    this.streams.delete(stream);
  }

  count(transport?: TransportName): number {
    if (!transport) return this.streams.size;
    let n = 0;
    for (const stream of this.streams) if (stream.transport === transport) n++;
    return n;
  }

  /** Ends every stream as the instance shuts down. */
  shutdown(): void {
    for (const stream of [...this.streams]) stream.shutdown();
  }
}

export const streamError = (code: ErrorCode, message: string): GraphQLFormattedError => ({ message, extensions: { code } });

export abstract class HttpStream implements OperationSink, SessionTransport {
  abstract readonly transport: TransportName;
  private session: Session | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  private destroyTimer: NodeJS.Timeout | undefined;
  private drainArmed = false;
  private measuring = false;
  private finished = false;

  constructor(
    protected readonly res: ServerResponse,
    private readonly layer: OperationLayer,
    private readonly registry: StreamRegistry,
    private readonly options: HttpStreamOptions,
  ) {}

  /** Status line, headers and whatever opens the body. */
  protected abstract open(): void;
  protected abstract frameNext(payload: string, event: GatewayEvent): string;
  protected abstract frameResult(result: WireResult): string;
  /** Errors after the stream opened, and the end that follows them. */
  protected abstract frameErrors(errors: readonly GraphQLFormattedError[]): string;
  protected abstract frameHeartbeat(): string;
  /** The normal end (the closing boundary, `event: complete`). */
  protected abstract frameEnd(): string;
  /** How this transport ends at shutdown (SSE: no `complete`, so clients reconnect). */
  protected abstract frameShutdown(): string;

  /**
   * Authenticates (the per-user cap counts every transport), opens the stream and starts the
   * operation. Refusals are answered before the stream opens, as JSON with a status.
   */
  async run(token: string, request: OperationRequest): Promise<void> {
    this.res.on('close', () => this.closed());
    const opened = await this.layer.openSession(token, this, this.transport);
    if (!('start' in opened)) {
      if (this.res.destroyed || this.res.headersSent) return;
      const [status, code] = opened.refused === 'forbidden' ? [401, ErrorCode.UNAUTHENTICATED] : [429, ErrorCode.TOO_MANY_CONNECTIONS];
      this.res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' });
      this.res.end(JSON.stringify({ errors: [streamError(code, opened.reason)] }));
      return;
    }
    if (this.res.destroyed || this.finished) {
      opened.end(); // the client left while its slot was being taken
      return;
    }
    this.session = opened;
    this.registry.add(this);
    this.open();
    this.heartbeat = setInterval(() => this.write(this.frameHeartbeat()), this.options.heartbeatMs);
    this.heartbeat.unref();
    await opened.start('1', request, this);
  }

  /** Writes, then checks the unsent bytes (a check before writing could never catch up). */
  private write(text: string): void {
    if (this.finished || this.res.destroyed) return;
    this.res.write(text);
    if (this.measuring) return;
    this.measuring = true;
    process.nextTick(this.measure);
  }

  /**
   * Node corks a response for the rest of the tick it is written in, so right after `write` the
   * whole frame looks unsent (an event bigger than the bound would end a reader that keeps up).
   * Measured once the cork is released, only what the kernel did not take counts. The response's
   * `writableLength` already includes its socket's.
   */
  private readonly measure = (): void => {
    this.measuring = false;
    if (this.finished || this.res.destroyed) return;
    const unsent = this.res.writableLength;
    if (unsent > this.options.maxBufferedBytes) this.session?.slowConsumer(`${unsent} unsent bytes`);
  };

  private finish(text: string): void {
    if (this.finished) return;
    this.write(text);
    this.finished = true;
    clearInterval(this.heartbeat);
    this.session?.end();
    this.registry.delete(this);
    if (!this.res.destroyed) this.res.end();
  }

  private closed(): void {
    this.finished = true;
    clearInterval(this.heartbeat);
    clearTimeout(this.destroyTimer);
    this.session?.end();
    this.registry.delete(this);
  }

  // OperationSink
  ready(): boolean {
    if (this.finished || this.res.destroyed) return false;
    const socket = this.res.socket;
    if (!socket?.writableNeedDrain && !this.res.writableNeedDrain) return true;
    if (!this.drainArmed) {
      this.drainArmed = true;
      (socket ?? this.res).once('drain', () => {
        this.drainArmed = false;
        this.session?.flush();
      });
    }
    return false;
  }

  next(_operation: OperationRef, payload: string, event: GatewayEvent): void {
    this.write(this.frameNext(payload, event));
  }

  result(_operation: OperationRef, result: WireResult): void {
    this.write(this.frameResult(result));
  }

  error(_operation: OperationRef, errors: readonly GraphQLFormattedError[]): void {
    this.finish(this.frameErrors(errors));
  }

  complete(): void {
    this.finish(this.frameEnd());
  }

  // SessionTransport
  expired(): void {
    this.finish(
      this.frameErrors([
        streamError(ErrorCode.TOKEN_EXPIRED, 'Token expired: reconnect with a fresh token (and after / Last-Event-ID to resume)'),
      ]),
    );
  }

  revoked(reason: string): void {
    this.finish(this.frameErrors([streamError(ErrorCode.SESSION_REVOKED, reason)]));
  }

  slow(reason: string): void {
    this.finish(
      this.frameErrors([
        streamError(ErrorCode.SLOW_CONSUMER, `Client too slow: ${reason}; reconnect and resume with after / Last-Event-ID`),
      ]),
    );
    // A peer that reads nothing never takes the end either: its socket goes after the grace.
    this.destroyTimer = setTimeout(() => this.res.destroy(), this.options.slowCloseGraceMs);
    this.destroyTimer.unref();
  }

  /** The instance is stopping. */
  shutdown(): void {
    this.finish(this.frameShutdown());
  }
}

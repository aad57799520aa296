/**
 * The `graphql-transport-ws` state machine (graphql-ws' PROTOCOL.md), knowing nothing about
 * sockets: a subclass supplies `send`, `close` and `closeSlow` (./server.ts does it for `ws`; the
 * unit tests with a recording fake). Messages go in through `receive`, one text frame each, in
 * the order they arrived (the adapter must not reorder frames that came in one TCP write).
 *
 * - `connection_init` must carry a valid token (`authorization`, `Authorization` or `token`, with
 *   or without `Bearer `); otherwise 4403 Forbidden. A second `connection_init`: 4429. None
 *   within the init timeout: 4408. Subscribe before the acknowledgement: 4401.
 * - `subscribe` with the id of an operation still running: 4409. After the client's `complete`
 *   the id is free at once, and nothing more is sent for the completed operation.
 * - `ping` is answered with `pong` (its payload echoed); `pong` is accepted any time.
 * - Anything that is not a valid client message (including the server's own message types sent
 *   by a client): 4400. An unexpected failure: 4500, its message masked in production.
 * - The operations themselves run in the operation layer (src/graphql/operation-layer.ts): the
 *   session decides limits, authorization and delivery; this class only frames.
 */
import { MessageType, parseMessage, type Message } from 'graphql-ws';
import type { GraphQLFormattedError } from 'graphql';
import { CloseCode } from '../../contracts/close-codes';
import type { GatewayEvent } from '../../contracts/events';
import { stripBearer } from '../../auth/jwt';
import type { OperationLayer, OperationRef, OperationSink, Session, SessionTransport, WireResult } from '../../graphql/operation-layer';
import { NextFrames } from './frames';

/** The token in a `connection_init` payload, under any of the keys clients use. */
export function tokenFromConnectionParams(params: unknown): string | undefined {
  if (typeof params !== 'object' || params === null || Array.isArray(params)) return undefined;
  for (const key of ['authorization', 'Authorization', 'token']) {
    const value = (params as Record<string, unknown>)[key];
    if (typeof value === 'string' && value.trim() !== '') return stripBearer(value);
  }
  return undefined;
}

export interface ProtocolOptions {
  /** `WS_CONNECTION_INIT_TIMEOUT_MS`; 0 waits forever. */
  readonly connectionInitTimeoutMs: number;
  /** Masks unexpected failures' messages in close reasons. */
  readonly production: boolean;
}

/** Every connection's `next` frames: one event's subscribers come one after another, so they share its bytes. */
const NEXT_FRAMES = new NextFrames();

/** Client messages of types only a server may send are not valid client messages (4400). */
const SERVER_ONLY = new Set<string>([MessageType.ConnectionAck, MessageType.Next, MessageType.Error]);

export abstract class GraphQLTransportWsProtocol implements OperationSink, SessionTransport {
  private initReceived = false;
  private closed = false;
  private session: Session | undefined;
  private initTimer: NodeJS.Timeout | undefined;

  protected constructor(
    private readonly layer: OperationLayer,
    private readonly options: ProtocolOptions,
  ) {
    if (options.connectionInitTimeoutMs > 0) {
      this.initTimer = setTimeout(() => {
        if (!this.initReceived) this.close(CloseCode.ConnectionInitialisationTimeout, 'Connection initialisation timeout');
      }, options.connectionInitTimeoutMs);
      this.initTimer.unref();
    }
  }

  /** Writes one text frame: a string, or its UTF-8 bytes (`next` frames, ./frames.ts). */
  protected abstract send(frame: string | Buffer): void;
  /** Closes the connection with a code and reason (the reason already fits RFC 6455's 123 bytes). */
  protected abstract close(code: number, reason: string): void;
  /** Ends a connection that cannot keep up (1013, then destroyed if the peer never completes the close). */
  protected abstract closeSlow(reason: string): void;
  /** False while the connection's send buffer is full (the subclass arms its drain notice). */
  protected abstract writable(): boolean;

  /** The connection holds more unsent bytes than allowed: end it as a slow consumer. */
  protected overflowed(reason: string): void {
    if (this.session) this.session.slowConsumer(reason);
    else this.closeSlow(reason);
  }

  /** The user, once acknowledged. */
  get user() {
    return this.session?.user;
  }

  /** Handles one text message. Never rejects: failures close the connection with 4500. */
  async receive(text: string): Promise<void> {
    try {
      await this.handle(text);
    } catch (error) {
      this.layer.logger.error({ err: error }, 'websocket message handling failed');
      const message = error instanceof Error ? error.message : String(error);
      this.close(CloseCode.InternalServerError, this.options.production ? 'Internal server error' : message);
    }
  }

  /** The send buffer drained: frames that waited can go. */
  drained(): void {
    this.session?.flush();
  }

  /** The connection closed (either side): every operation released. Idempotent. */
  connectionClosed(): void {
    if (this.closed) return;
    this.closed = true;
    this.clearInitTimer();
    this.session?.end();
  }

  /** Cleared and dropped: a cleared `Timeout` kept in a field would stay on the heap as long as the socket. */
  private clearInitTimer(): void {
    clearTimeout(this.initTimer);
    this.initTimer = undefined;
  }

  private async handle(text: string): Promise<void> {
    let message: Message;
    try {
      message = parseMessage(text);
    } catch {
      return this.close(CloseCode.BadRequest, 'Invalid message received');
    }
    if (SERVER_ONLY.has(message.type)) return this.close(CloseCode.BadRequest, 'Invalid message received');
    switch (message.type) {
      case MessageType.ConnectionInit:
        return this.init(message.payload);
      case MessageType.Ping:
        return this.send(
          JSON.stringify(message.payload ? { type: MessageType.Pong, payload: message.payload } : { type: MessageType.Pong }),
        );
      case MessageType.Pong:
        return;
      case MessageType.Subscribe: {
        const { session } = this;
        if (!session) return this.close(CloseCode.Unauthorized, 'Unauthorized');
        if (session.has(message.id)) return this.close(CloseCode.SubscriberAlreadyExists, `Subscriber for ${message.id} already exists`);
        return session.start(message.id, message.payload, this);
      }
      case MessageType.Complete:
        return this.session?.stop(message.id);
      default:
        throw new Error(`Unexpected message of type ${(message as { type: string }).type} received`);
    }
  }

  private async init(payload: unknown): Promise<void> {
    if (this.initReceived) return this.close(CloseCode.TooManyInitialisationRequests, 'Too many initialisation requests');
    this.initReceived = true;
    this.clearInitTimer();
    const opened = await this.layer.openSession(tokenFromConnectionParams(payload), this);
    if (!('start' in opened)) {
      if (this.closed) return;
      return this.close(opened.refused === 'forbidden' ? CloseCode.Forbidden : CloseCode.TooManyConnections, opened.reason);
    }
    if (this.closed) return opened.end(); // the peer left while its slot was being taken
    this.session = opened;
    this.send(JSON.stringify({ type: MessageType.ConnectionAck }));
  }

  // OperationSink: frames for the operations of this connection.
  ready(): boolean {
    return !this.closed && this.writable();
  }

  next(operation: OperationRef, payload: string, _event: GatewayEvent): void {
    this.send(NEXT_FRAMES.frame(operation.idJson, payload));
  }

  result(operation: OperationRef, result: WireResult): void {
    this.send(`{"id":${operation.idJson},"type":"next","payload":${JSON.stringify(result)}}`);
  }

  error(operation: OperationRef, errors: readonly GraphQLFormattedError[]): void {
    this.send(`{"id":${operation.idJson},"type":"error","payload":${JSON.stringify(errors)}}`);
  }

  complete(operation: OperationRef): void {
    this.send(`{"id":${operation.idJson},"type":"complete"}`);
  }

  // SessionTransport
  expired(): void {
    this.close(CloseCode.Forbidden, 'Forbidden: token expired');
  }

  slow(reason: string): void {
    this.closeSlow(reason);
  }

  revoked(reason: string): void {
    this.close(CloseCode.Forbidden, reason);
  }
}

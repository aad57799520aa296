/**
 * GraphQL over WebSocket on the HTTP server's `/graphql` path: the socket glue around the
 * `graphql-transport-ws` state machine (./protocol.ts), served here rather than by graphql-ws'
 * `useServer` (docs/decisions: our own graphql-transport-ws server). This file knows `ws` and TCP;
 * it knows nothing of GraphQL:
 *
 * - subprotocol negotiation (graphql-ws' `handleProtocols`; anything else is closed with 4406);
 * - listeners shared by every socket (`this` is the socket; nothing allocated per socket for them);
 * - one keep-alive sweep for all sockets: a peer that did not answer the previous ping is gone;
 * - backpressure: while the TCP socket's send buffer is over its high-water mark, events wait in
 *   each subscription's bounded, coalescing buffer and are offered again on `drain`; a socket
 *   holding more than `maxBufferedBytes` unsent bytes, or one of whose subscriptions overflowed,
 *   is closed with 1013, its operations released at once, and destroyed if the peer has not
 *   completed the close handshake within `slowCloseGraceMs`;
 * - 1001 on shutdown. Protocol errors of the framing itself (invalid UTF-8 1007, oversize 1009,
 *   bad frames 1002) are closed by `ws` with the right code.
 */
import type { Server as HttpServer } from 'node:http';
import type { Socket } from 'node:net';
import { GRAPHQL_TRANSPORT_WS_PROTOCOL, handleProtocols } from 'graphql-ws';
import type { Logger } from 'pino';
import { WebSocket, WebSocketServer, type RawData } from 'ws';
import { closeReason, CloseCode } from '../../contracts/close-codes';
import type { OperationLayer } from '../../graphql/operation-layer';
import { GraphQLTransportWsProtocol, type ProtocolOptions } from './protocol';

export interface WsServerOptions extends ProtocolOptions {
  /** `WS_MAX_PAYLOAD_BYTES`: larger messages are closed with 1009 by `ws`. */
  readonly maxPayloadBytes: number;
  /** `WS_KEEPALIVE_MS`: ping interval; 0 disables the sweep. */
  readonly keepAliveMs: number;
  /** `WS_MAX_BUFFERED_BYTES`: unsent bytes a socket may hold before it is closed with 1013. */
  readonly maxBufferedBytes: number;
  /** `WS_SLOW_CLOSE_GRACE_MS`: after a 1013 close, time for the peer to finish the handshake. */
  readonly slowCloseGraceMs: number;
}

export interface GraphQLWsServer {
  /** Open sockets. */
  readonly socketCount: () => number;
  /** Closes every socket with 1001 and stops accepting new ones. */
  close(timeoutMs: number): Promise<void>;
}

/** `ws` would send a Buffer as a binary frame: every frame here is text (one options object for all). */
const TEXT_FRAME = { binary: false } as const;

/** One socket: the protocol state machine over a `ws` socket and its TCP transport. */
class WsConnection extends GraphQLTransportWsProtocol {
  /** Answered the last keep-alive ping. */
  alive = true;
  private drainArmed = false;
  private slowClosed = false;
  /** The TCP socket under the WebSocket: its write buffer tells whether the peer keeps up. */
  private readonly transport: Socket | undefined;
  terminateTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly socket: WebSocket,
    layer: OperationLayer,
    private readonly wsOptions: WsServerOptions,
    private readonly logger: Logger,
  ) {
    super(layer, wsOptions);
    this.transport = (socket as unknown as { _socket?: Socket })._socket;
  }

  /** Sends, then checks the unsent bytes (a check before sending could never catch up). */
  protected send(frame: string | Buffer): void {
    const { socket } = this;
    if (socket.readyState !== WebSocket.OPEN) return;
    socket.send(frame, TEXT_FRAME);
    if (socket.bufferedAmount > this.wsOptions.maxBufferedBytes) this.overflowed(`${socket.bufferedAmount} unsent bytes`);
  }

  protected close(code: number, reason: string): void {
    this.socket.close(code, closeReason(reason));
  }

  protected closeSlow(reason: string): void {
    if (this.slowClosed) return;
    this.slowClosed = true;
    const { socket } = this;
    this.logger.warn({ userId: this.user?.id, reason, bufferedAmount: socket.bufferedAmount }, 'slow consumer: closing socket with 1013');
    socket.close(CloseCode.TryAgainLater, 'Try again later: client too slow');
    this.terminateTimer = setTimeout(() => socket.terminate(), this.wsOptions.slowCloseGraceMs);
    this.terminateTimer.unref();
  }

  protected writable(): boolean {
    if (this.socket.readyState !== WebSocket.OPEN) return false;
    const { transport } = this;
    if (!transport?.writableNeedDrain) return true;
    if (!this.drainArmed) {
      this.drainArmed = true;
      transport.once('drain', () => {
        this.drainArmed = false;
        this.drained();
      });
    }
    return false;
  }
}

export function startGraphQLWsServer(deps: {
  httpServer: HttpServer;
  layer: OperationLayer;
  options: WsServerOptions;
  logger: Logger;
}): GraphQLWsServer {
  const { httpServer, layer, options, logger } = deps;
  /** Every open socket's connection (the shared listeners look theirs up here). */
  const connections = new Map<WebSocket, WsConnection>();
  const wss = new WebSocketServer({
    server: httpServer,
    path: '/graphql',
    maxPayload: options.maxPayloadBytes,
    handleProtocols: (protocols) => handleProtocols(protocols),
  });
  wss.on('error', (error) => logger.warn({ err: error }, 'websocket server error'));

  function onMessage(this: WebSocket, data: RawData): void {
    void connections.get(this)?.receive(messageText(data));
  }
  function onPong(this: WebSocket): void {
    const connection = connections.get(this);
    if (connection) connection.alive = true;
  }
  // ws requires an 'error' listener, or the error would crash the process.
  function onError(error: Error): void {
    logger.debug({ err: error }, 'websocket protocol error');
  }
  function onClose(this: WebSocket): void {
    const connection = connections.get(this);
    if (!connection) return;
    connections.delete(this);
    clearTimeout(connection.terminateTimer);
    connection.connectionClosed();
  }

  wss.on('connection', (socket) => {
    socket.on('error', onError);
    if (socket.protocol !== GRAPHQL_TRANSPORT_WS_PROTOCOL) {
      socket.close(CloseCode.SubprotocolNotAcceptable, 'Subprotocol not acceptable');
      return;
    }
    connections.set(socket, new WsConnection(socket, layer, options, logger));
    socket.on('message', onMessage);
    socket.on('pong', onPong);
    socket.on('close', onClose);
  });

  const keepAlive =
    options.keepAliveMs > 0
      ? setInterval(() => {
          for (const [socket, connection] of connections) {
            if (socket.readyState !== WebSocket.OPEN) continue;
            if (!connection.alive) {
              socket.terminate();
              continue;
            }
            connection.alive = false;
            socket.ping();
          }
        }, options.keepAliveMs)
      : undefined;
  keepAlive?.unref();

  return {
    socketCount: () => wss.clients.size,
    async close(timeoutMs) {
      clearInterval(keepAlive);
      for (const client of wss.clients) client.close(CloseCode.GoingAway, 'Going away');
      const timer = setTimeout(() => {
        for (const client of wss.clients) client.terminate();
      }, timeoutMs);
      try {
        await new Promise<void>((resolve, reject) => wss.close((error) => (error ? reject(error) : resolve())));
      } finally {
        clearTimeout(timer);
      }
    },
  };
}

/** A frame's text. `ws` hands a Buffer with the default `binaryType`; the other shapes are decoded alike. */
function messageText(data: RawData): string {
  if (Buffer.isBuffer(data)) return data.toString('utf8');
  return (Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data)).toString('utf8');
}

/**
 * An HTTP/1.1 client on a bare TCP socket, for what fetch will not do: send a streaming request
 * and then stop reading (no `data` listener: Node reads up to its high-water mark and leaves the
 * rest in the kernel, so the server's writes back up). Also finds the server's side of the same
 * connection through Node's `http.server.request.start` diagnostics channel (the gateway runs in
 * the test's process), so a test can see what the gateway holds for it and when it lets go.
 */
import diagnostics from 'node:diagnostics_channel';
import type { IncomingMessage } from 'node:http';
import net from 'node:net';
import { track } from './teardown';
import { deferred, within } from './wait';

export interface RawHttpStream {
  /** Status line and headers, read before the client stopped reading. */
  readonly head: string;
  readonly status: number;
  /** The gateway's socket for this request. */
  readonly serverSocket: net.Socket;
  /** Resolves when the gateway's socket has closed (destroyed or ended). */
  readonly serverClosed: Promise<void>;
  /** Starts reading again; `ended` resolves once the server ends or drops the connection. */
  resume(): void;
  readonly ended: Promise<void>;
  /** Everything received after the head (chunked transfer encoding as sent). */
  text(): string;
  destroy(): void;
}

interface RequestStart {
  readonly request: IncomingMessage;
  readonly socket: net.Socket;
}

/**
 * Sends `request` (the whole request text) to 127.0.0.1:`port`, reads the response head, then
 * stops reading. The returned stream is registered for teardown.
 */
export async function openRawHttpStream(port: number, request: string): Promise<RawHttpStream> {
  const socket = net.connect(port, '127.0.0.1');
  socket.on('error', () => undefined);
  const tracked = track(`raw HTTP stream to :${port}`, () => void socket.destroy());
  socket.once('close', () => tracked.untrack());
  const serverSide = deferred<net.Socket>();
  const onRequest = (message: unknown) => {
    const { socket: server } = message as RequestStart;
    if (server.remotePort === socket.localPort) serverSide.resolve(server);
  };
  diagnostics.subscribe('http.server.request.start', onRequest);
  try {
    await within(
      new Promise<void>((resolve, reject) => {
        socket.once('connect', resolve);
        socket.once('error', reject);
      }),
      `a connection to :${port}`,
    );
    socket.write(request);
    const server = await within(serverSide.promise, 'the gateway to take the request');
    const serverClosed = new Promise<void>((resolve) => (server.destroyed ? resolve() : server.once('close', () => resolve())));

    let received = '';
    const head = await within(
      new Promise<string>((resolve, reject) => {
        const onData = (chunk: Buffer) => {
          received += chunk.toString('latin1');
          const end = received.indexOf('\r\n\r\n');
          if (end < 0) return;
          // Stopped here: from now on the kernel buffers fill and the gateway's writes back up.
          socket.off('data', onData);
          socket.pause();
          resolve(received.slice(0, end));
          received = received.slice(end + 4);
        };
        socket.on('data', onData);
        socket.once('close', () => reject(new Error('the connection closed before the response head')));
      }),
      'the response head',
    );
    const ended = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    return {
      head,
      status: Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0),
      serverSocket: server,
      serverClosed,
      resume() {
        socket.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')));
        socket.once('end', () => socket.destroy());
        socket.resume();
      },
      ended,
      text: () => received,
      destroy: () => void socket.destroy(),
    };
  } catch (error) {
    socket.destroy();
    throw error;
  } finally {
    diagnostics.unsubscribe('http.server.request.start', onRequest);
  }
}

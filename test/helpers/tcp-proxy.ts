/**
 * A TCP proxy for disturbing or measuring one gateway's link to a shared service without
 * touching the service or anyone else's connections:
 * - `block()` drops every proxied connection and refuses new ones until `unblock()` (an outage
 *   of RabbitMQ, as seen by this gateway only);
 * - with `countPgStatements`, it counts the statements PostgreSQL clients send (simple `Query`
 *   and extended-protocol `Execute` messages): SQL round trips measured at the wire.
 */
import net from 'node:net';
import { track } from './teardown';

export interface TcpProxy {
  /** `targetUrl` with host and port replaced by the proxy's. */
  readonly url: string;
  /** PostgreSQL statements sent so far (only with `countPgStatements`). */
  statements(): number;
  block(): void;
  unblock(): void;
  close(): Promise<void>;
}

export async function startTcpProxy(targetUrl: string, options: { countPgStatements?: boolean } = {}): Promise<TcpProxy> {
  const target = new URL(targetUrl);
  const targetPort = Number(target.port || (target.protocol.startsWith('amqp') ? 5672 : 5432));
  let statements = 0;
  let blocked = false;
  const sockets = new Set<net.Socket>();

  const server = net.createServer((client) => {
    if (blocked) {
      client.destroy();
      return;
    }
    const upstream = net.connect(targetPort, target.hostname);
    sockets.add(client).add(upstream);
    let buffer = Buffer.alloc(0);
    let started = false;
    const count = (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk]);
      for (;;) {
        if (!started) {
          // StartupMessage or SSLRequest: Int32 length, no type byte.
          if (buffer.length < 8) return;
          const length = buffer.readInt32BE(0);
          if (buffer.length < length) return;
          if (buffer.readInt32BE(4) !== 80877103) started = true;
          buffer = buffer.subarray(length);
          continue;
        }
        if (buffer.length < 5) return;
        const length = buffer.readInt32BE(1);
        if (buffer.length < 1 + length) return;
        const type = String.fromCharCode(buffer[0] as number);
        if (type === 'Q' || type === 'E') statements++;
        buffer = buffer.subarray(1 + length);
      }
    };
    client.on('data', (chunk: Buffer) => {
      if (options.countPgStatements) count(chunk);
      upstream.write(chunk);
    });
    upstream.on('data', (chunk: Buffer) => client.write(chunk));
    const end = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('close', end).on('error', end);
    upstream.on('close', end).on('error', end);
  });
  const tracked = track(`TCP proxy to ${target.host}`, async () => {
    blocked = true;
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const proxied = new URL(targetUrl);
  proxied.hostname = '127.0.0.1';
  proxied.port = String((server.address() as net.AddressInfo).port);
  return {
    url: proxied.toString(),
    statements: () => statements,
    block() {
      blocked = true;
      for (const socket of sockets) socket.destroy();
      sockets.clear();
    },
    unblock() {
      blocked = false;
    },
    close: () => tracked.close(),
  };
}

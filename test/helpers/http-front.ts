/**
 * A TCP front for gateway instances, as a load balancer is: one origin (`url`) a browser talks to,
 * forwarding each connection to the current instance. `hold()` keeps new connections waiting
 * (accepted, not forwarded) until `release()`, so a test decides when a client's reconnect reaches
 * the next instance; `target()` switches instances for connections forwarded from then on.
 */
import net from 'node:net';
import { track } from './teardown';

export interface HttpFront {
  /** `http://127.0.0.1:<port>`: the origin the browser sees. */
  readonly url: string;
  target(port: number): void;
  hold(): void;
  /** Forwards the connections held so far, and every new one, to the current target. */
  release(): void;
  /** Connections accepted and waiting because of `hold()`. */
  held(): number;
  close(): Promise<void>;
}

export async function startHttpFront(initialPort: number): Promise<HttpFront> {
  let targetPort = initialPort;
  let holding = false;
  const waiting: net.Socket[] = [];
  const sockets = new Set<net.Socket>();

  const forward = (client: net.Socket) => {
    if (client.destroyed) return;
    const upstream = net.connect(targetPort, '127.0.0.1');
    sockets.add(upstream);
    // pipe() keeps backpressure and half-closes as the peers do (a server's end reaches the browser as an end).
    client.pipe(upstream);
    upstream.pipe(client);
    const end = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('close', end).on('error', end);
    upstream.on('close', end).on('error', end);
  };

  const server = net.createServer((client) => {
    sockets.add(client);
    client.on('error', () => client.destroy());
    if (holding) {
      client.pause();
      waiting.push(client);
    } else forward(client);
  });
  const tracked = track('HTTP front', async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    target(port) {
      targetPort = port;
    },
    hold() {
      holding = true;
    },
    release() {
      holding = false;
      for (const client of waiting.splice(0)) forward(client);
    },
    held: () => waiting.filter((client) => !client.destroyed).length,
    close: () => tracked.close(),
  };
}

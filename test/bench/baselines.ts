/**
 * The two baselines the gateway is compared with, consuming the same RabbitMQ events and speaking
 * enough graphql-transport-ws for the same clients:
 * - `raw`: a plain `ws` server; each event parsed once, its frame serialized once, the same bytes
 *   written to every matching socket. The floor for "GraphQL over WebSocket" on this machine.
 * - `graphql-ws`: what a user assembles from the libraries: graphql-js SDL, graphql-ws `useServer`,
 *   one in-memory `PubSub` subscription per client.
 */
import { EventEmitter } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import amqp from 'amqplib';
import { buildSchema } from 'graphql';
import { PubSub } from 'graphql-subscriptions';
import { useServer } from 'graphql-ws/use/ws';
import { WebSocketServer, type WebSocket } from 'ws';
import { verifyHs } from '../helpers/jwt';
import { BASELINE_SDL, baselineEvent, DEVICE_ROUTING_KEY, QUOTA_ROUTING_KEY, type BaselineField } from './events';

export interface BenchServerConfig {
  readonly amqpUrl: string;
  readonly exchange: string;
  readonly queue: string;
  readonly jwtSecret: string;
}

export interface RunningServer {
  readonly port: number;
  /** Live subscriptions and sockets, for the runner to know when every client is subscribed. */
  counts(): { sockets: number; subscriptions: number };
  stop(): Promise<void>;
}

interface User {
  readonly id: string;
  readonly admin: boolean;
}

function verify(params: Record<string, unknown> | undefined, secret: string): User | undefined {
  const header = params?.authorization ?? params?.Authorization ?? params?.token;
  if (typeof header !== 'string') return undefined;
  const claims = verifyHs(header.replace(/^Bearer\s+/i, ''), secret);
  if (typeof claims?.sub !== 'string') return undefined;
  return { id: claims.sub, admin: Array.isArray(claims.roles) && claims.roles.includes('admin') };
}

/** Both baselines consume like the gateway: own durable queue, prefetch 100, ack after the fan-out. */
async function consume(
  config: BenchServerConfig,
  onEvent: (routingKey: string, message: Record<string, unknown>) => void,
): Promise<() => Promise<void>> {
  const connection = await amqp.connect(config.amqpUrl);
  connection.on('error', () => undefined);
  const channel = await connection.createChannel();
  channel.on('error', () => undefined);
  await channel.assertExchange(config.exchange, 'topic', { durable: true });
  await channel.assertQueue(config.queue, { durable: true });
  await channel.bindQueue(config.queue, config.exchange, QUOTA_ROUTING_KEY);
  await channel.bindQueue(config.queue, config.exchange, DEVICE_ROUTING_KEY);
  await channel.prefetch(100);
  await channel.consume(config.queue, (msg) => {
    if (!msg) return;
    try {
      onEvent(msg.fields.routingKey, JSON.parse(msg.content.toString('utf8')) as Record<string, unknown>);
    } catch {
      // A bench-only server: a bad message is simply dropped.
    }
    channel.ack(msg);
  });
  return async () => {
    await connection.close().catch(() => undefined);
  };
}

function listen(server: http.Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));
}

function closeServer(server: http.Server): Promise<void> {
  return new Promise((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  });
}

interface RawSocket {
  user?: User;
  /** Subscription id per field; at most one of each per socket, as the bench clients do. */
  readonly ids: Partial<Record<BaselineField, string>>;
  /** Subscribed to every user's events (administrator without `userId`). */
  readonly firehose: Partial<Record<BaselineField, boolean>>;
}

export async function startRawServer(config: BenchServerConfig): Promise<RunningServer> {
  const server = http.createServer((_req, res) => res.writeHead(404).end());
  const wss = new WebSocketServer({ server, path: '/graphql', perMessageDeflate: false });
  const state = new Map<WebSocket, RawSocket>();
  const byUser: Record<BaselineField, Map<string, Set<WebSocket>>> = { quotaChanged: new Map(), deviceStatusChanged: new Map() };
  const firehose: Record<BaselineField, Set<WebSocket>> = { quotaChanged: new Set(), deviceStatusChanged: new Set() };
  let subscriptions = 0;

  const unsubscribe = (ws: WebSocket, s: RawSocket, field: BaselineField) => {
    if (s.ids[field] === undefined) return;
    delete s.ids[field];
    subscriptions--;
    if (s.firehose[field]) firehose[field].delete(ws);
    else if (s.user) byUser[field].get(s.user.id)?.delete(ws);
  };

  wss.on('connection', (ws) => {
    const s: RawSocket = { ids: {}, firehose: {} };
    state.set(ws, s);
    ws.on('error', () => undefined);
    ws.on('close', () => {
      unsubscribe(ws, s, 'quotaChanged');
      unsubscribe(ws, s, 'deviceStatusChanged');
      state.delete(ws);
    });
    ws.on('message', (data) => {
      let msg: { type?: string; id?: string; payload?: { query?: string; variables?: { userId?: string } } & Record<string, unknown> };
      try {
        msg = JSON.parse((data as Buffer).toString('utf8')) as typeof msg; // a Buffer: the default binaryType
      } catch {
        ws.close(4400, 'Invalid message received');
        return;
      }
      if (msg.type === 'connection_init') {
        s.user = verify(msg.payload, config.jwtSecret);
        if (!s.user) ws.close(4403, 'Forbidden');
        else ws.send('{"type":"connection_ack"}');
      } else if (msg.type === 'ping') {
        ws.send('{"type":"pong"}');
      } else if (msg.type === 'subscribe' && s.user && typeof msg.id === 'string') {
        const field: BaselineField = msg.payload?.query?.includes('quotaChanged') ? 'quotaChanged' : 'deviceStatusChanged';
        if (s.ids[field] !== undefined) return;
        s.ids[field] = msg.id;
        subscriptions++;
        const target = msg.payload?.variables?.userId;
        if (s.user.admin && target === undefined) {
          s.firehose[field] = true;
          firehose[field].add(ws);
        } else {
          const userId = target ?? s.user.id;
          let set = byUser[field].get(userId);
          if (!set) byUser[field].set(userId, (set = new Set()));
          set.add(ws);
        }
      } else if (msg.type === 'complete' && typeof msg.id === 'string') {
        for (const field of ['quotaChanged', 'deviceStatusChanged'] as const) if (s.ids[field] === msg.id) unsubscribe(ws, s, field);
      }
    });
  });

  const stopConsuming = await consume(config, (routingKey, message) => {
    const event = baselineEvent(routingKey, message);
    if (!event) return;
    const payload = JSON.stringify({ data: { [event.field]: event.data } });
    // One frame per distinct subscription id (every bench client uses the same one): the same bytes to every socket.
    const frames = new Map<string, Buffer>();
    const send = (ws: WebSocket) => {
      const id = state.get(ws)?.ids[event.field];
      if (id === undefined) return;
      let frame = frames.get(id);
      if (!frame) frames.set(id, (frame = Buffer.from(`{"id":${JSON.stringify(id)},"type":"next","payload":${payload}}`)));
      ws.send(frame, { binary: false });
    };
    for (const ws of byUser[event.field].get(event.userId) ?? []) send(ws);
    for (const ws of firehose[event.field]) send(ws);
  });

  const port = await listen(server);
  return {
    port,
    counts: () => ({ sockets: state.size, subscriptions }),
    async stop() {
      await stopConsuming();
      for (const ws of state.keys()) ws.terminate();
      wss.close();
      await closeServer(server);
    },
  };
}

export async function startGraphqlWsServer(config: BenchServerConfig): Promise<RunningServer> {
  const schema = buildSchema(BASELINE_SDL);
  // One listener per subscription on a topic (every administrator on `quota:all`) is the point here.
  const emitter = new EventEmitter();
  emitter.setMaxListeners(0);
  const pubsub = new PubSub({ eventEmitter: emitter });
  const server = http.createServer((_req, res) => res.writeHead(404).end());
  const wss = new WebSocketServer({ server, path: '/graphql', perMessageDeflate: false });
  let subscriptions = 0;
  const users = new WeakMap<object, User>();

  /** An iterator on the caller's topic (or every user's, for an administrator without `userId`), counted while live. */
  const subscribe = (family: string) => (args: { userId?: string }, context: { user: User }) => {
    const topic = context.user.admin && args.userId === undefined ? `${family}:all` : `${family}:${args.userId ?? context.user.id}`;
    const iterator = pubsub.asyncIterableIterator(topic);
    subscriptions++;
    const release = iterator.return.bind(iterator);
    iterator.return = () => {
      subscriptions--;
      return release();
    };
    return iterator;
  };

  const cleanup = useServer(
    {
      schema,
      roots: { subscription: { quotaChanged: subscribe('quota'), deviceStatusChanged: subscribe('device') } },
      onConnect: (ctx) => {
        const user = verify(ctx.connectionParams, config.jwtSecret);
        if (!user) return false;
        users.set(ctx, user);
        return true;
      },
      context: (ctx) => ({ user: users.get(ctx) }),
    },
    wss,
  );

  const stopConsuming = await consume(config, (routingKey, message) => {
    const event = baselineEvent(routingKey, message);
    if (!event) return;
    const family = event.field === 'quotaChanged' ? 'quota' : 'device';
    const payload = { [event.field]: event.data };
    void pubsub.publish(`${family}:${event.userId}`, payload);
    void pubsub.publish(`${family}:all`, payload);
  });

  const port = await listen(server);
  return {
    port,
    counts: () => ({ sockets: wss.clients.size, subscriptions }),
    async stop() {
      await stopConsuming();
      await cleanup.dispose();
      await closeServer(server);
    },
  };
}

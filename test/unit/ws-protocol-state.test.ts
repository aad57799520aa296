/**
 * The graphql-transport-ws state machine (src/transports/ws/protocol.ts) over the operation layer,
 * without sockets: a recording fake connection, a small schema whose subscription is a pushed
 * event queue, and frames fed in back to back as they arrive in one TCP write. Every transition of
 * graphql-ws' PROTOCOL.md the server side owns is checked, and the operation lifecycle is checked
 * by identity (complete + subscribe with the same id in one write).
 */
import { buildSchema } from 'graphql';
import pino from 'pino';
import type { AuthUser, Services } from '../../src/contracts/context';
import { createErrorFormatter } from '../../src/graphql/format-error';
import { OperationLayer, type TokenCheck } from '../../src/graphql/operation-layer';
import { MemoryConnectionRegistry } from '../../src/infra/memory/memory-connection-registry';
import { createEventQueue, type EventQueue } from '../../src/lib/event-queue';
import { GraphQLTransportWsProtocol } from '../../src/transports/ws/protocol';

const logger = pino({ level: 'silent' });

interface Tick {
  readonly eventId: string;
  readonly n: number;
}

/** A deferred promise: resolved from outside, awaited inside a resolver. */
function deferred<T = void>() {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

/** One layer per test, with hooks to hold a subscription's setup and to push events. */
function setup(options: { maxOperations?: number; maxBuffered?: number; users?: Record<string, Partial<AuthUser>> } = {}) {
  const queues: EventQueue<Tick>[] = [];
  const gates: { promise: Promise<void>; resolve: () => void }[] = [];
  const schema = buildSchema(`
    type Query { hello: String }
    type Tick { eventId: ID!, n: Int! }
    type Subscription { ticks(hold: Boolean): Tick! }
  `);
  const subscriptionType = schema.getSubscriptionType();
  const ticks = subscriptionType?.getFields().ticks;
  if (!ticks) throw new Error('schema has no ticks');
  ticks.subscribe = async (_root, args: { hold?: boolean }) => {
    if (args.hold) {
      const gate = deferred();
      gates.push(gate);
      await gate.promise;
    }
    const queue = createEventQueue<Tick>(() => undefined, { maxBuffered: options.maxBuffered ?? 100, coalesceMs: 0 });
    queues.push(queue);
    return queue;
  };
  ticks.resolve = (event: unknown) => event;
  schema.getQueryType()!.getFields().hello!.resolve = () => 'world';

  const verifier: TokenCheck = {
    async verify(token) {
      const user = options.users?.[token];
      if (!user) throw new Error('bad token');
      return { id: token, roles: [], isAdmin: false, expiresAt: Date.now() + 60_000, ...user };
    },
  };
  const services = { onSubscriptionChange: () => undefined } as unknown as Services;
  const layer = new OperationLayer(
    schema,
    services,
    {
      verifier,
      connections: new MemoryConnectionRegistry(2),
      formatError: createErrorFormatter({ production: true, logger }),
      logger,
      instanceId: 'unit',
    },
    { maxTokens: 1_000, validationRules: [], introspection: true, maxOperationsPerSession: options.maxOperations ?? 5 },
  );
  return { layer, queues, gates };
}

class FakeConnection extends GraphQLTransportWsProtocol {
  readonly frames: unknown[] = [];
  closedWith: { code: number; reason: string } | undefined;
  private readonly closing = deferred();
  /** Resolves when the connection closes. */
  readonly whenClosed = this.closing.promise;
  slowReason: string | undefined;
  canWrite = true;

  constructor(layer: OperationLayer, initTimeoutMs = 0) {
    super(layer, { connectionInitTimeoutMs: initTimeoutMs, production: true });
  }

  protected send(frame: string | Buffer): void {
    if (!this.closedWith) this.frames.push(JSON.parse(typeof frame === 'string' ? frame : frame.toString('utf8')));
  }
  protected close(code: number, reason: string): void {
    this.closedWith ??= { code, reason };
    this.connectionClosed();
    this.closing.resolve();
  }
  protected closeSlow(reason: string): void {
    this.slowReason = reason;
    this.close(1013, 'Try again later: client too slow');
  }
  protected writable(): boolean {
    return this.canWrite;
  }

  /** Feeds frames back to back, as one TCP write delivers them, and waits for all to settle. */
  async write(...messages: unknown[]): Promise<void> {
    await Promise.all(messages.map((message) => this.receive(typeof message === 'string' ? message : JSON.stringify(message))));
  }
}

const ALICE = { alice: {} };
const subscribe = (id: string, query = 'subscription { ticks { eventId n } }') => ({ id, type: 'subscribe', payload: { query } });
const complete = (id: string) => ({ id, type: 'complete' });
/** Lets pending promise chains (verification, subscribe resolvers) run. */
const settle = () => new Promise((resolve) => setImmediate(resolve));

async function acknowledged(layer: OperationLayer) {
  const connection = new FakeConnection(layer);
  await connection.write({ type: 'connection_init', payload: { authorization: 'Bearer alice' } });
  expect(connection.frames).toEqual([{ type: 'connection_ack' }]);
  connection.frames.length = 0;
  return connection;
}

describe('connection_init', () => {
  it('acknowledges a valid token under authorization, Authorization or token, with or without Bearer', async () => {
    const { layer } = setup({ users: ALICE });
    for (const payload of [{ authorization: 'Bearer alice' }, { Authorization: 'alice' }, { token: 'Bearer alice' }]) {
      const connection = new FakeConnection(layer);
      await connection.write({ type: 'connection_init', payload });
      expect(connection.frames).toEqual([{ type: 'connection_ack' }]);
      expect(connection.closedWith).toBeUndefined();
      connection.connectionClosed();
    }
  });

  it('closes 4403 without a token or with a bad one', async () => {
    const { layer } = setup({ users: ALICE });
    for (const payload of [undefined, {}, { authorization: 'Bearer mallory' }, { authorization: 42 }]) {
      const connection = new FakeConnection(layer);
      await connection.write({ type: 'connection_init', ...(payload ? { payload } : {}) });
      expect(connection.closedWith).toEqual({ code: 4403, reason: 'Forbidden' });
      expect(connection.frames).toEqual([]);
    }
  });

  it('closes 4403 for a token that has already expired', async () => {
    const { layer } = setup({ users: { old: { expiresAt: Date.now() - 1 } } });
    const connection = new FakeConnection(layer);
    await connection.write({ type: 'connection_init', payload: { token: 'old' } });
    expect(connection.closedWith).toEqual({ code: 4403, reason: 'Forbidden' });
  });

  it('closes 4429 on a second connection_init, even one sent back to back with the first', async () => {
    const { layer } = setup({ users: ALICE });
    const connection = new FakeConnection(layer);
    const init = { type: 'connection_init', payload: { token: 'alice' } };
    await connection.write(init, init);
    expect(connection.closedWith).toEqual({ code: 4429, reason: 'Too many initialisation requests' });
  });

  it('closes 4408 when no connection_init arrives in time', async () => {
    jest.useFakeTimers();
    try {
      const { layer } = setup({ users: ALICE });
      const connection = new FakeConnection(layer, 1_000);
      jest.advanceTimersByTime(999);
      expect(connection.closedWith).toBeUndefined();
      jest.advanceTimersByTime(1);
      expect(connection.closedWith).toEqual({ code: 4408, reason: 'Connection initialisation timeout' });
    } finally {
      jest.useRealTimers();
    }
  });

  it('closes 1008 when the user already holds the maximum of connections, and frees the slot on close', async () => {
    const { layer } = setup({ users: ALICE });
    const first = await acknowledged(layer);
    await acknowledged(layer);
    const third = new FakeConnection(layer);
    await third.write({ type: 'connection_init', payload: { token: 'alice' } });
    expect(third.closedWith).toEqual({ code: 1008, reason: 'Too many connections for this user' });
    expect(layer.counters.socketLimitCloses).toBe(1);
    first.connectionClosed();
    await settle();
    await acknowledged(layer);
  });
});

describe('messages', () => {
  it('closes 4401 on subscribe before the acknowledgement', async () => {
    const { layer } = setup({ users: ALICE });
    const connection = new FakeConnection(layer);
    await connection.write(subscribe('1'));
    expect(connection.closedWith).toEqual({ code: 4401, reason: 'Unauthorized' });
  });

  it.each([
    ['not JSON', '{'],
    ['no type', '{}'],
    ['an unknown type', '{"type":"hello"}'],
    ['subscribe without an id', '{"type":"subscribe","payload":{"query":"{ hello }"}}'],
    ['a server-only connection_ack', '{"type":"connection_ack"}'],
    ['a server-only next', '{"id":"1","type":"next","payload":{}}'],
    ['a server-only error', '{"id":"1","type":"error","payload":[{"message":"x"}]}'],
  ])('closes 4400 on %s', async (_name, text) => {
    const { layer } = setup({ users: ALICE });
    const connection = await acknowledged(layer);
    await connection.write(text);
    expect(connection.closedWith).toEqual({ code: 4400, reason: 'Invalid message received' });
  });

  it('answers ping with pong, echoing its payload, before and after the acknowledgement; accepts pong', async () => {
    const { layer } = setup({ users: ALICE });
    const connection = new FakeConnection(layer);
    await connection.write({ type: 'ping' }, { type: 'ping', payload: { at: 1 } }, { type: 'pong' });
    expect(connection.frames).toEqual([{ type: 'pong' }, { type: 'pong', payload: { at: 1 } }]);
    expect(connection.closedWith).toBeUndefined();
  });

  it('runs a query as next then complete, and its id is free again afterwards', async () => {
    const { layer } = setup({ users: ALICE });
    const connection = await acknowledged(layer);
    const query = { id: 'q', type: 'subscribe', payload: { query: '{ hello }' } };
    await connection.write(query);
    await connection.write(query);
    const answer = [
      { id: 'q', type: 'next', payload: { data: { hello: 'world' } } },
      { id: 'q', type: 'complete' },
    ];
    expect(connection.frames).toEqual([...answer, ...answer]);
  });

  it('sends error (and no complete) for a document that does not parse or validate', async () => {
    const { layer } = setup({ users: ALICE });
    const connection = await acknowledged(layer);
    await connection.write(subscribe('a', 'subscription {'), subscribe('b', '{ nope }'));
    expect(connection.frames).toEqual([
      { id: 'a', type: 'error', payload: [expect.objectContaining({ extensions: { code: 'GRAPHQL_PARSE_FAILED' } })] },
      { id: 'b', type: 'error', payload: [expect.objectContaining({ extensions: { code: 'GRAPHQL_VALIDATION_FAILED' } })] },
    ]);
    expect(connection.closedWith).toBeUndefined();
  });
});

describe('operation lifecycle', () => {
  it('pushes events as next frames under the operation id, and stops on complete', async () => {
    const { layer, queues } = setup({ users: ALICE });
    const connection = await acknowledged(layer);
    await connection.write(subscribe('s'));
    queues[0]!.push({ eventId: 'e1', n: 1 });
    await connection.write(complete('s'));
    queues[0]!.push({ eventId: 'e2', n: 2 });
    expect(connection.frames).toEqual([{ id: 's', type: 'next', payload: { data: { ticks: { eventId: 'e1', n: 1 } } } }]);
  });

  it('closes 4409 on subscribe with the id of an operation still running', async () => {
    const { layer } = setup({ users: ALICE });
    const connection = await acknowledged(layer);
    await connection.write(subscribe('s'), subscribe('s'));
    expect(connection.closedWith).toEqual({ code: 4409, reason: 'Subscriber for s already exists' });
  });

  it('complete + subscribe with the same id in one write: the new operation is answered, the cancelled one sends nothing', async () => {
    const { layer, queues, gates } = setup({ users: ALICE });
    const connection = await acknowledged(layer);
    const held = 'subscription { ticks(hold: true) { eventId n } }';
    // The first subscribe is still being set up (its resolver waits) when complete and the new
    // subscribe arrive back to back in one write.
    const first = connection.write(subscribe('x', held));
    await settle();
    const second = connection.write(complete('x'), subscribe('x', held));
    while (gates.length < 2) await settle();
    gates[1]!.resolve(); // the new one finishes first: queues[0] is the new operation's
    await second;
    gates[0]!.resolve(); // then the cancelled one: queues[1], returned at once
    await first;
    expect(queues).toHaveLength(2);
    queues[0]!.push({ eventId: 'new', n: 1 });
    queues[1]!.push({ eventId: 'old', n: 0 });
    expect(connection.frames).toEqual([{ id: 'x', type: 'next', payload: { data: { ticks: { eventId: 'new', n: 1 } } } }]);
    expect((await queues[1]!.next()).done).toBe(true);
    expect(connection.closedWith).toBeUndefined();
  });

  it('the cancelled setup finishing first cannot take the id from the new one', async () => {
    const { layer, queues, gates } = setup({ users: ALICE });
    const connection = await acknowledged(layer);
    const held = 'subscription { ticks(hold: true) { eventId n } }';
    const first = connection.write(subscribe('x', held));
    await settle();
    const second = connection.write(complete('x'), subscribe('x', held));
    while (gates.length < 2) await settle();
    gates[0]!.resolve(); // the cancelled one finishes first
    await first;
    gates[1]!.resolve();
    await second;
    // queues[0] belongs to the cancelled operation (its gate opened first): it was returned.
    queues[0]!.push({ eventId: 'old', n: 0 });
    queues[1]!.push({ eventId: 'new', n: 1 });
    expect(connection.frames).toEqual([{ id: 'x', type: 'next', payload: { data: { ticks: { eventId: 'new', n: 1 } } } }]);
  });

  it('refuses operations beyond the cap with TOO_MANY_SUBSCRIPTIONS on that operation; the others go on', async () => {
    const { layer, queues } = setup({ users: ALICE, maxOperations: 2 });
    const connection = await acknowledged(layer);
    await connection.write(subscribe('a'), subscribe('b'), subscribe('c'));
    expect(connection.frames).toEqual([
      { id: 'c', type: 'error', payload: [expect.objectContaining({ extensions: { code: 'TOO_MANY_SUBSCRIPTIONS', max: 2 } })] },
    ]);
    queues[1]!.push({ eventId: 'b1', n: 1 });
    expect(connection.frames[1]).toEqual({ id: 'b', type: 'next', payload: { data: { ticks: { eventId: 'b1', n: 1 } } } });
    expect(layer.counters.tooManySubscriptions).toBe(1);
  });

  it('a stream that ends by itself completes; one that fails (its buffer overflowed) sends error', async () => {
    const { layer, queues } = setup({ users: ALICE, maxBuffered: 1 });
    const connection = await acknowledged(layer);
    await connection.write(subscribe('a'), subscribe('b'));
    await queues[0]!.return();
    expect(connection.frames).toEqual([{ id: 'a', type: 'complete' }]);
    connection.canWrite = false;
    queues[1]!.push({ eventId: 'b1', n: 1 });
    queues[1]!.push({ eventId: 'b2', n: 2 });
    connection.canWrite = true;
    expect(connection.frames[1]).toEqual({
      id: 'b',
      type: 'error',
      payload: [{ message: 'Internal server error', extensions: { code: 'INTERNAL_SERVER_ERROR' } }],
    });
    // The id is free again.
    await connection.write(subscribe('b'));
    expect(connection.closedWith).toBeUndefined();
  });

  it('events wait while the connection cannot write, and flow on drain, in order', async () => {
    const { layer, queues } = setup({ users: ALICE });
    const connection = await acknowledged(layer);
    await connection.write(subscribe('s'));
    connection.canWrite = false;
    queues[0]!.push({ eventId: 'e1', n: 1 });
    queues[0]!.push({ eventId: 'e2', n: 2 });
    expect(connection.frames).toEqual([]);
    connection.canWrite = true;
    connection.drained();
    expect(connection.frames.map((frame) => (frame as { payload: { data: { ticks: Tick } } }).payload.data.ticks.n)).toEqual([1, 2]);
  });

  it('closing the connection stops every operation and frees its slot', async () => {
    const { layer, queues } = setup({ users: ALICE });
    const connection = await acknowledged(layer);
    await connection.write(subscribe('a'), subscribe('b'));
    connection.connectionClosed();
    queues[0]!.push({ eventId: 'late', n: 1 });
    expect(connection.frames).toEqual([]);
    const next = await queues[1]!.next();
    expect(next.done).toBe(true);
  });

  it('closes 4403 when the token expires while open', async () => {
    const { layer } = setup({ users: { brief: { expiresAt: Date.now() + 50 } } });
    const connection = new FakeConnection(layer);
    await connection.write({ type: 'connection_init', payload: { token: 'brief' } });
    expect(connection.frames).toEqual([{ type: 'connection_ack' }]);
    await connection.whenClosed;
    expect(connection.closedWith).toEqual({ code: 4403, reason: 'Forbidden: token expired' });
  });
});

/**
 * The load generator: C raw `ws` clients speaking minimal graphql-transport-ws (or, with
 * `transport: 'sse'`, C clients of GraphQL over SSE: one `text/event-stream` GET on
 * /graphql/stream per subscription, as a browser's EventSource opens it), and a publisher
 * that sends platform events to RabbitMQ at a fixed rate (token bucket). Publish and receive
 * times come from one clock (this process's `performance.now()`), so latency is
 * receive - publish, end to end through RabbitMQ, the server and the socket.
 *
 * Every event's id is `<phase tag>-<sequence>`: a client finds it with a byte search in the frame
 * (no JSON.parse on the hot path), which gives its publish time, where it was meant to go, and
 * whether this subscription already had it.
 */
import http from 'node:http';
import { performance } from 'node:perf_hooks';
import type { Channel } from 'amqplib';
import WebSocket from 'ws';
import { signHs } from '../helpers/jwt';
import {
  announcementMessage,
  DEVICE_DOCUMENT,
  DEVICE_ID,
  deviceMessage,
  NOTIFICATION_DOCUMENT,
  QUOTA_DOCUMENT,
  QUOTA_ID,
  quotaMessage,
} from './events';

/**
 * per-user: each socket its own events; fan-out: administrators, every event to every socket;
 * broadcast: plain users, one announcement to everyone reaches every socket (on the baselines,
 * which have no announcements, it runs as their fan-out: the same bytes to every socket).
 */
export type Mode = 'per-user' | 'fan-out' | 'broadcast';

/** Latency histogram: 10 µs buckets below 1 s, 1 ms buckets up to 2 min. */
export class Histogram {
  private readonly fine = new Uint32Array(100_000);
  private readonly coarse = new Uint32Array(120_000);
  count = 0;
  max = 0;

  record(ms: number): void {
    this.count++;
    if (ms > this.max) this.max = ms;
    if (ms < 1000) (this.fine[Math.max(0, Math.floor(ms * 100))] as number)++;
    else (this.coarse[Math.min(119_999, Math.floor(ms - 1000))] as number)++;
  }

  percentile(p: number): number {
    if (this.count === 0) return NaN;
    const rank = Math.ceil((p / 100) * this.count);
    let seen = 0;
    for (let i = 0; i < this.fine.length; i++) {
      seen += this.fine[i] as number;
      if (seen >= rank) return (i + 1) / 100;
    }
    for (let i = 0; i < this.coarse.length; i++) {
      seen += this.coarse[i] as number;
      if (seen >= rank) return 1000 + i + 1;
    }
    return this.max;
  }
}

export interface PhaseResult {
  readonly targetRate: number;
  readonly events: number;
  /** Events per second actually published (token bucket, bounded by the broker's flow control). */
  readonly publishRate: number;
  readonly expected: number;
  readonly delivered: number;
  /** Expected, not received, and the stream had gone quiet for the drain time: really lost. */
  readonly lost: number;
  /**
   * Expected, not received, but deliveries were still arriving when the window's hard cap
   * closed it: an overloaded server's backlog (reported, not a correctness failure).
   */
  readonly late: number;
  readonly duplicated: number;
  /** Delivered to a socket that did not subscribe to that user (per-user only). */
  readonly misrouted: number;
  /** Deliveries over the time from the first publish to the last delivery. */
  readonly deliveriesPerSec: number;
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
  readonly seconds: number;
}

const EVENT_ID_KEY = Buffer.from('"eventId":"');
const QUOTE = 0x22;
const DASH = 0x2d;

interface Client {
  /** graphql-ws: the socket; SSE: its streams' requests (one per subscription). */
  readonly ws?: WebSocket;
  readonly requests?: http.ClientRequest[];
  readonly index: number;
}

const FRAME_END = Buffer.from('\n\n');

export interface LoadOptions {
  /** graphql-ws: `ws://host:port/graphql`; SSE: `http://host:port/graphql/stream`. */
  readonly url: string;
  /** How the clients subscribe (default graphql-ws). */
  readonly transport?: 'ws' | 'sse';
  readonly mode: Mode;
  readonly clients: number;
  readonly jwtSecret: string;
  readonly channel: Channel;
  readonly exchange: string;
  /** Unique to the run, so users never collide with another run's leftovers. */
  readonly runTag: string;
  /** A baseline server (raw ws, plain graphql-ws): broadcast runs as its fan-out. */
  readonly baseline?: boolean;
}

export class Load {
  private readonly clients: Client[] = [];
  /** A fixed random order of users: any C consecutive per-user events name distinct users. */
  private readonly order: Int32Array;
  private tag = '';
  private tagBytes = Buffer.alloc(0);
  private pubAt = new Float64Array(0);
  private target = new Int32Array(0);
  private seen: Uint8Array[] = [];
  private hist = new Histogram();
  private delivered = 0;
  private duplicated = 0;
  private misrouted = 0;
  private lastReceive = 0;
  /** Last frame with an event id of any phase: the server is quiet when this stops moving. */
  lastAnyReceive = 0;
  private phaseNo = 0;
  /** Sockets closed by the server, and `error`/`complete` frames: never expected in a run. */
  readonly problems: string[] = [];
  private expectedCloses = false;

  constructor(private readonly options: LoadOptions) {
    this.order = new Int32Array(options.clients);
    for (let i = 0; i < options.clients; i++) this.order[i] = i;
    for (let i = options.clients - 1; i > 0; i--) {
      const j = Math.floor(Math.random() * (i + 1));
      const t = this.order[i] as number;
      this.order[i] = this.order[j] as number;
      this.order[j] = t;
    }
  }

  /** Broadcast on the gateway: plain users on notifications, announcements published. */
  private get announcing(): boolean {
    return this.options.mode === 'broadcast' && this.options.baseline !== true;
  }

  private userId(index: number): string {
    if (this.announcing) return `${this.options.runTag}-b${index}`;
    return this.options.mode === 'per-user' ? `${this.options.runTag}-u${index}` : `${this.options.runTag}-admin${index}`;
  }

  private problem(text: string): void {
    if (this.problems.length < 1000) this.problems.push(text);
  }

  /** Opens every client (at most `concurrency` handshakes at a time) and subscribes it. */
  async connect(concurrency = 100, timeoutMs = 120_000): Promise<void> {
    const now = Math.floor(Date.now() / 1000);
    const admin = this.options.mode !== 'per-user' && !this.announcing;
    const subscribes = [
      `{"id":"${QUOTA_ID}","type":"subscribe","payload":{"query":${JSON.stringify(this.announcing ? NOTIFICATION_DOCUMENT : QUOTA_DOCUMENT)}}}`,
    ];
    if (this.options.mode === 'per-user')
      subscribes.push(`{"id":"${DEVICE_ID}","type":"subscribe","payload":{"query":${JSON.stringify(DEVICE_DOCUMENT)}}}`);
    const deadline = Date.now() + timeoutMs;
    let next = 0;
    const documents =
      this.options.mode === 'per-user' ? [QUOTA_DOCUMENT, DEVICE_DOCUMENT] : [this.announcing ? NOTIFICATION_DOCUMENT : QUOTA_DOCUMENT];
    const tokenOf = (index: number) =>
      signHs(this.options.jwtSecret, { sub: this.userId(index), roles: admin ? ['admin'] : [], iat: now, exp: now + 7200 });
    const openSse = (index: number) => this.openSse(index, tokenOf(index), documents);
    const openOne = (index: number) =>
      new Promise<void>((resolve, reject) => {
        const token = signHs(this.options.jwtSecret, { sub: this.userId(index), roles: admin ? ['admin'] : [], iat: now, exp: now + 7200 });
        const ws = new WebSocket(this.options.url, 'graphql-transport-ws', { perMessageDeflate: false });
        const client: Client = { ws, index };
        let acked = false;
        const timer = setTimeout(() => reject(new Error(`client ${index}: no connection_ack within 30 s`)), 30_000);
        ws.on('open', () => ws.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${token}` } })));
        ws.on('error', (error) => {
          clearTimeout(timer);
          if (!acked) reject(error);
          else this.problem(`client ${index}: ${error.message}`);
        });
        ws.on('close', (code, reason) => {
          clearTimeout(timer);
          if (!acked) reject(new Error(`client ${index}: closed ${code} ${String(reason)} before connection_ack`));
          else if (!this.expectedCloses) this.problem(`client ${index}: closed by the server ${code} ${String(reason)}`);
        });
        ws.on('message', (data: Buffer) => {
          const at = data.indexOf(EVENT_ID_KEY);
          if (at >= 0) {
            this.receive(index, data, at + EVENT_ID_KEY.length);
            return;
          }
          let msg: { type?: string; id?: string; payload?: unknown };
          try {
            msg = JSON.parse(data.toString('utf8')) as typeof msg;
          } catch {
            this.problem(`client ${index}: unparsable frame`);
            return;
          }
          if (msg.type === 'connection_ack' && !acked) {
            acked = true;
            clearTimeout(timer);
            for (const s of subscribes) ws.send(s);
            this.clients.push(client);
            resolve();
          } else if (msg.type === 'ping') {
            ws.send('{"type":"pong"}');
          } else if (msg.type !== 'pong') {
            this.problem(`client ${index}: unexpected ${msg.type} ${JSON.stringify(msg.payload ?? '').slice(0, 200)}`);
          }
        });
      });
    const worker = async () => {
      while (next < this.options.clients) {
        if (Date.now() > deadline) throw new Error(`connecting ${this.options.clients} clients took over ${timeoutMs} ms`);
        await (this.options.transport === 'sse' ? openSse : openOne)(next++);
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, this.options.clients) }, worker));
  }

  /**
   * One SSE client: a GET per subscription (distinct connections mode, the token as `?token=`
   * like EventSource), resolved once every stream answered 200 and sent its opening comment.
   * Frames are split on the blank line that ends an SSE event, so one split across TCP reads
   * is found whole; several in one read are each counted.
   */
  private async openSse(index: number, token: string, documents: readonly string[]): Promise<void> {
    const client: Client = { index, requests: [] };
    this.clients.push(client);
    await Promise.all(
      documents.map(
        (document) =>
          new Promise<void>((resolve, reject) => {
            const url = new URL(this.options.url);
            url.searchParams.set('query', document);
            url.searchParams.set('token', token);
            let opened = false;
            const timer = setTimeout(() => reject(new Error(`client ${index}: no SSE stream within 30 s`)), 30_000);
            const request = http.get(url, { agent: false, headers: { accept: 'text/event-stream' } }, (response) => {
              if (response.statusCode !== 200) {
                clearTimeout(timer);
                reject(new Error(`client ${index}: SSE answered ${response.statusCode}`));
                response.resume();
                return;
              }
              let pending: Buffer | undefined;
              response.on('data', (chunk: Buffer) => {
                if (!opened) {
                  opened = true;
                  clearTimeout(timer);
                  resolve();
                }
                const data = pending ? Buffer.concat([pending, chunk]) : chunk;
                const last = data.lastIndexOf(FRAME_END);
                if (last < 0) {
                  pending = data;
                  return;
                }
                pending = last + 2 < data.length ? data.subarray(last + 2) : undefined;
                for (let at = data.indexOf(EVENT_ID_KEY); at >= 0 && at < last; at = data.indexOf(EVENT_ID_KEY, at + 1)) {
                  this.receive(index, data, at + EVENT_ID_KEY.length);
                }
                if (data.indexOf('event: complete') >= 0 && data.indexOf('event: complete') < last) {
                  this.problem(`client ${index}: complete ${data.subarray(0, Math.min(last, 300)).toString()}`);
                }
              });
              response.on('end', () => {
                if (!this.expectedCloses) this.problem(`client ${index}: SSE stream ended by the server`);
              });
            });
            request.on('error', (error) => {
              clearTimeout(timer);
              if (!opened) reject(error);
              else if (!this.expectedCloses) this.problem(`client ${index}: ${error.message}`);
            });
            client.requests?.push(request);
          }),
      ),
    );
  }

  /** The hot path: one delivery. */
  private receive(index: number, data: Buffer, start: number): void {
    const now = performance.now();
    this.lastAnyReceive = now;
    const end = data.indexOf(QUOTE, start);
    const dash = data.lastIndexOf(DASH, end);
    if (
      end < 0 ||
      dash < start ||
      dash - start !== this.tagBytes.length ||
      data.compare(this.tagBytes, 0, this.tagBytes.length, start, dash) !== 0
    ) {
      return; // an earlier phase's straggler (a previous step's backlog): not this phase's business
    }
    let seq = 0;
    for (let i = dash + 1; i < end; i++) seq = seq * 10 + ((data[i] as number) - 48);
    if (seq >= this.pubAt.length) return;
    if (this.options.mode === 'per-user') {
      if (this.target[seq] !== index) this.misrouted++;
      const seen = this.seen[0] as Uint8Array;
      if (seen[seq]) {
        this.duplicated++;
        return;
      }
      seen[seq] = 1;
    } else {
      const seen = this.seen[index] as Uint8Array;
      const bit = 1 << (seq & 7);
      const byte = seq >> 3;
      if ((seen[byte] as number) & bit) {
        this.duplicated++;
        return;
      }
      seen[byte] = (seen[byte] as number) | bit;
    }
    this.delivered++;
    this.lastReceive = now;
    this.hist.record(now - (this.pubAt[seq] as number));
  }

  /**
   * Publishes `rate` events/s for `seconds` and waits until all are delivered, or nothing arrived
   * for `drainMs` (an overloaded server still working off its backlog keeps the phase open, up to
   * `maxDrainMs`, so its figures say "late", not "lost"); returns what the clients saw.
   */
  async phase(rate: number, seconds: number, drainMs: number, maxDrainMs = 60_000): Promise<PhaseResult> {
    const events = Math.max(1, Math.round(rate * seconds));
    this.tag = `${this.options.runTag}p${++this.phaseNo}`;
    this.tagBytes = Buffer.from(this.tag);
    this.pubAt = new Float64Array(events);
    this.target = new Int32Array(events);
    this.hist = new Histogram();
    this.delivered = 0;
    this.duplicated = 0;
    this.misrouted = 0;
    this.lastReceive = 0;
    const c = this.options.clients;
    this.seen =
      this.options.mode === 'per-user' ? [new Uint8Array(events)] : Array.from({ length: c }, () => new Uint8Array((events >> 3) + 1));

    const { channel, exchange } = this.options;
    const publishOne = (seq: number) => {
      const eventId = `${this.tag}-${seq}`;
      let message;
      if (this.options.mode === 'per-user') {
        const index = this.order[seq % c] as number;
        this.target[seq] = index;
        // Cycles of C events alternate quota and device: one user's events of a family are 2C apart,
        // so nothing is legitimately coalesced (EVENT_COALESCE_MS) unless rate > 20 C/s.
        message =
          Math.floor(seq / c) % 2 === 0 ? quotaMessage(eventId, this.userId(index), seq) : deviceMessage(eventId, this.userId(index), seq);
      } else if (this.announcing) {
        message = announcementMessage(eventId, seq);
      } else {
        // A different user per event: every event is about its own quota, never coalesced.
        message = quotaMessage(eventId, `${this.tag}-fan${seq}`, seq);
      }
      const body = Buffer.from(JSON.stringify(message.body));
      this.pubAt[seq] = performance.now();
      return channel.publish(exchange, message.routingKey, body, { persistent: true, contentType: 'application/json', messageId: eventId });
    };

    const start = performance.now();
    const stopAt = start + seconds * 1000 * 3 + 5000; // bounded even if the broker blocks us
    let sent = 0;
    while (sent < events && performance.now() < stopAt) {
      const due = Math.min(events, Math.floor(((performance.now() - start) / 1000) * rate) + 1);
      let open = true;
      while (sent < due && open) open = publishOne(sent++);
      if (!open) await new Promise<void>((resolve) => channel.once('drain', () => resolve()));
      else await new Promise<void>((resolve) => setTimeout(resolve, 1));
    }
    const published = performance.now();
    const publishRate = sent / Math.max(0.001, (published - start) / 1000);
    const expectedNow = this.options.mode === 'per-user' ? sent : sent * this.clients.length;
    const drainCap = published + Math.max(drainMs, maxDrainMs);
    while (
      this.delivered < expectedNow &&
      performance.now() - Math.max(published, this.lastReceive) < drainMs &&
      performance.now() < drainCap
    ) {
      await new Promise<void>((resolve) => setTimeout(resolve, 10));
    }
    const stillArriving = this.delivered < expectedNow && performance.now() - Math.max(published, this.lastReceive) < drainMs;
    const seconds_ = ((this.lastReceive || performance.now()) - start) / 1000;
    return {
      targetRate: rate,
      events: sent,
      publishRate,
      expected: expectedNow,
      delivered: this.delivered,
      lost: stillArriving ? 0 : expectedNow - this.delivered,
      late: stillArriving ? expectedNow - this.delivered : 0,
      duplicated: this.duplicated,
      misrouted: this.misrouted,
      deliveriesPerSec: this.delivered / Math.max(0.001, seconds_),
      p50: this.hist.percentile(50),
      p99: this.hist.percentile(99),
      max: this.hist.max,
      seconds: seconds_,
    };
  }

  get connected(): number {
    return this.clients.length;
  }

  close(): void {
    this.expectedCloses = true;
    for (const c of this.clients) {
      c.ws?.terminate();
      for (const request of c.requests ?? []) request.destroy();
    }
    this.clients.length = 0;
  }
}

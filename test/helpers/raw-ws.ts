/**
 * A WebSocket client on a bare TCP socket, for what a well-behaved library will not do: frames
 * of any opcode and payload (invalid UTF-8, garbage, oversize), and a socket that stops reading
 * (no `data` listener: Node reads up to its high-water mark and then leaves the bytes in the
 * kernel, so the server's sends back up). Frames from the server are parsed when reading.
 */
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { track } from './teardown';
import { deferred, within } from './wait';

export interface ServerFrame {
  readonly opcode: number;
  readonly payload: Buffer;
}

export interface RawWs {
  /** Sends one masked frame (opcode 0x1 text, 0x2 binary, 0x8 close, 0x9 ping, ...). */
  frame(opcode: number, payload: Buffer | string, options?: { fin?: boolean }): void;
  /** Sends a graphql-ws message as a text frame. */
  json(message: unknown): void;
  /** Sends several graphql-ws messages as text frames in one TCP write (back to back, as a busy client does). */
  jsonBatch(messages: readonly unknown[]): void;
  /** Waits for the next text message from the server (parsed JSON). */
  message(what?: string): Promise<Record<string, unknown>>;
  /** Stops reading the socket; `resume()` reads again. */
  pause(): void;
  resume(): void;
  /** Resolves with the server's close code (1006 when the connection ends without a close frame). */
  readonly closed: Promise<number>;
  destroy(): void;
}

/** `answerPings`: reply to the server's keep-alive pings as a browser does (off: the peer looks dead to it). */
export async function connectRaw(url: string, protocol = 'graphql-transport-ws', options: { answerPings?: boolean } = {}): Promise<RawWs> {
  const { hostname, port, pathname } = new URL(url);
  const socket = net.connect(Number(port), hostname);
  socket.on('error', () => undefined);
  const tracked = track(`raw WebSocket to ${url}`, () => void socket.destroy());
  socket.once('close', () => tracked.untrack());
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  socket.write(
    [
      `GET ${pathname} HTTP/1.1`,
      `Host: ${hostname}:${port}`,
      'Upgrade: websocket',
      'Connection: Upgrade',
      `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}`,
      'Sec-WebSocket-Version: 13',
      `Sec-WebSocket-Protocol: ${protocol}`,
      '',
      '',
    ].join('\r\n'),
  );

  function encodeFrame(opcode: number, payload: Buffer | string, options: { fin?: boolean } = {}): Buffer {
    const data = typeof payload === 'string' ? Buffer.from(payload) : payload;
    const first = (options.fin === false ? 0 : 0x80) | opcode;
    const mask = randomBytes(4);
    const header =
      data.length < 126
        ? Buffer.from([first, 0x80 | data.length])
        : data.length < 65_536
          ? Buffer.concat([Buffer.from([first, 0x80 | 126]), u16(data.length)])
          : Buffer.concat([Buffer.from([first, 0x80 | 127]), u64(data.length)]);
    const masked = Buffer.alloc(data.length);
    for (let i = 0; i < data.length; i++) masked[i] = data[i]! ^ mask[i % 4]!;
    return Buffer.concat([header, mask, masked]);
  }
  function sendFrame(opcode: number, payload: Buffer | string, options: { fin?: boolean } = {}): void {
    if (!socket.destroyed && socket.writable) socket.write(encodeFrame(opcode, payload, options));
  }

  let buffer = Buffer.alloc(0);
  let upgraded = false;
  const closed = deferred<number>();
  const messages: Record<string, unknown>[] = [];
  const waiters: ((message: Record<string, unknown>) => void)[] = [];
  const upgradedSignal = deferred<void>();
  let reading = true;

  const parse = () => {
    if (!upgraded) {
      const end = buffer.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = buffer.subarray(0, end).toString();
      if (!head.startsWith('HTTP/1.1 101')) {
        upgradedSignal.reject(new Error(`upgrade refused: ${head.split('\r\n')[0]}`));
        return;
      }
      upgraded = true;
      buffer = buffer.subarray(end + 4);
      upgradedSignal.resolve();
    }
    for (;;) {
      if (buffer.length < 2) return;
      const opcode = buffer[0]! & 0x0f;
      let length = buffer[1]! & 0x7f;
      let offset = 2;
      if (length === 126) {
        if (buffer.length < 4) return;
        length = buffer.readUInt16BE(2);
        offset = 4;
      } else if (length === 127) {
        if (buffer.length < 10) return;
        length = Number(buffer.readBigUInt64BE(2));
        offset = 10;
      }
      if (buffer.length < offset + length) return;
      const payload = buffer.subarray(offset, offset + length);
      buffer = buffer.subarray(offset + length);
      if (opcode === 0x8) {
        // Complete the closing handshake as a browser would.
        closed.resolve(payload.length >= 2 ? payload.readUInt16BE(0) : 1005);
        sendFrame(0x8, payload.subarray(0, 2));
        socket.end();
      } else if (opcode === 0x9 && options.answerPings) sendFrame(0xa, payload);
      else if (opcode === 0x1) {
        const message = JSON.parse(payload.toString()) as Record<string, unknown>;
        const waiter = waiters.shift();
        if (waiter) waiter(message);
        else messages.push(message);
      }
    }
  };
  const onData = (chunk: Buffer) => {
    buffer = Buffer.concat([buffer, chunk]);
    parse();
  };
  socket.on('data', onData);
  socket.on('close', () => closed.resolve(1006));
  await within(upgradedSignal.promise, 'the WebSocket upgrade');

  const raw: RawWs = {
    frame: sendFrame,
    json(message) {
      raw.frame(0x1, JSON.stringify(message));
    },
    jsonBatch(batch) {
      const bytes = Buffer.concat(batch.map((message) => encodeFrame(0x1, JSON.stringify(message))));
      if (!socket.destroyed && socket.writable) socket.write(bytes);
    },
    message(what = 'a message from the server') {
      const ready = messages.shift();
      if (ready) return Promise.resolve(ready);
      return within(new Promise((resolve) => waiters.push(resolve)), what);
    },
    pause() {
      if (!reading) return;
      reading = false;
      socket.off('data', onData);
      socket.pause();
    },
    resume() {
      if (reading) return;
      reading = true;
      socket.on('data', onData);
      socket.resume();
    },
    closed: closed.promise,
    destroy() {
      socket.destroy();
    },
  };
  return raw;
}

function u16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
}

function u64(n: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(n));
  return b;
}

/**
 * `next` frames as the bytes `ws` writes (docs/decisions/0605-delivery-frames-and-socket-memory.md).
 *
 * Handed a string, `ws` measures its UTF-8 length and the socket encodes it again on every write,
 * so a payload fanned out to C sockets was encoded C times, each time as part of a fresh string
 * (garbage). Pushed events reach every subscriber of an event one after another with the same
 * payload text (one execution per event and selection, ../../graphql/push-delivery.ts), so this
 * remembers the last frame it built:
 *
 * - the same payload under the same id (every socket whose client numbers its operations alike):
 *   the same Buffer again, as a raw `ws` server would send;
 * - the same payload under another id (graphql-ws clients give each operation a UUID): a new
 *   frame with the id written in and the payload's bytes copied from the last frame, not encoded;
 * - another payload: encoded once, straight into the frame.
 *
 * The bytes are exactly those of `{"id":<idJson>,"type":"next","payload":<payload>}` in UTF-8
 * (test/unit/ws-frames.test.ts). A frame is never written to after it is returned: `ws` does not
 * mask server frames, so the same Buffer may sit in several sockets' write queues at once.
 */

const HEAD = Buffer.from('{"id":');
const MIDDLE = Buffer.from(',"type":"next","payload":');
const CLOSE_BRACE = 0x7d;

/** Builds `next` frames, remembering the last one; a pure memo, so one instance can serve every socket. */
export class NextFrames {
  private lastPayload: string | undefined;
  private lastId: string | undefined;
  private lastFrame: Buffer | undefined;
  /** Where the payload's bytes start in `lastFrame` (they end one byte before its end). */
  private lastPayloadStart = 0;

  /** The frame of `payload` (JSON text) for the operation whose id, as JSON text, is `idJson`. */
  frame(idJson: string, payload: string): Buffer {
    const last = this.lastFrame;
    const samePayload = last !== undefined && payload === this.lastPayload;
    if (samePayload && idJson === this.lastId) return last;
    const idBytes = Buffer.byteLength(idJson);
    const payloadStart = HEAD.length + idBytes + MIDDLE.length;
    let frame: Buffer;
    if (samePayload) {
      // The payload's bytes are already in the last frame: copied, not encoded again.
      frame = Buffer.allocUnsafe(payloadStart + (last.length - 1 - this.lastPayloadStart) + 1);
      last.copy(frame, payloadStart, this.lastPayloadStart, last.length - 1);
    } else {
      frame = Buffer.allocUnsafe(payloadStart + Buffer.byteLength(payload) + 1);
      frame.write(payload, payloadStart, 'utf8');
    }
    HEAD.copy(frame, 0);
    frame.write(idJson, HEAD.length, 'utf8');
    MIDDLE.copy(frame, HEAD.length + idBytes);
    frame[frame.length - 1] = CLOSE_BRACE;
    this.lastId = idJson;
    this.lastPayload = payload;
    this.lastFrame = frame;
    this.lastPayloadStart = payloadStart;
    return frame;
  }
}

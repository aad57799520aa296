/**
 * `next` frames built as bytes (src/transports/ws/frames.ts) must be exactly the UTF-8 of the text
 * frame the gateway sent before: `{"id":<idJson>,"type":"next","payload":<payload>}`, whatever the
 * id and payload hold, in whatever order frames are asked for.
 */
import { NextFrames } from '../../src/transports/ws/frames';

const text = (idJson: string, payload: string) => `{"id":${idJson},"type":"next","payload":${payload}}`;

const IDS = [
  '1',
  'q',
  '0b0f3c9e-6c1a-4a5e-9a4e-1f2d3c4b5a69',
  'ü-é',
  '日本',
  '🚀 launch',
  'quote " and \\ slash',
  '\u2028',
  'x'.repeat(300),
  '',
];
const PAYLOADS = [
  '{"data":{"quotaChanged":{"eventId":"e-1","usagePercent":42.5}}}',
  '{"data":{"notifications":{"title":"Maintenance à 02:00","message":"Überprüfung 🛠️ 維護"}}}',
  // A lone surrogate as JSON.stringify escapes it, and raw astral characters.
  JSON.stringify({ data: { x: '\ud800', y: '𝄞' } }),
  JSON.stringify({ data: { big: 'é'.repeat(70_000) } }),
  '{"data":null,"errors":[{"message":"Forbidden","extensions":{"code":"FORBIDDEN"}}]}',
];

describe('next frames as bytes', () => {
  it('are byte for byte the UTF-8 of the text frame, for every id and payload', () => {
    const frames = new NextFrames();
    for (const payload of PAYLOADS) {
      for (const id of IDS) {
        const idJson = JSON.stringify(id);
        const frame = frames.frame(idJson, payload);
        expect(Buffer.compare(frame, Buffer.from(text(idJson, payload), 'utf8'))).toBe(0);
        expect(JSON.parse(frame.toString('utf8')) as unknown).toEqual({ id, type: 'next', payload: JSON.parse(payload) as unknown });
      }
    }
  });

  it('give the same Buffer again for the same id and payload, a new one for another id', () => {
    const frames = new NextFrames();
    const payload = PAYLOADS[1]!;
    const first = frames.frame('"q"', payload);
    // Equal strings that are not the same string object count as the same payload.
    expect(frames.frame('"q"', `${payload} `.trimEnd())).toBe(first);
    const other = frames.frame('"ü-é"', payload);
    expect(other).not.toBe(first);
    expect(other.toString('utf8')).toBe(text('"ü-é"', payload));
    // The first frame was not written into since it was handed out.
    expect(first.toString('utf8')).toBe(text('"q"', payload));
  });

  it('stay exact when ids and payloads interleave (copied payload bytes, ids of other lengths)', () => {
    const frames = new NextFrames();
    const given: { frame: Buffer; expected: string }[] = [];
    let seed = 7;
    const pick = <T>(list: readonly T[]) => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      return list[seed % list.length]!;
    };
    for (let i = 0; i < 2_000; i++) {
      const idJson = JSON.stringify(pick(IDS));
      const payload = pick(PAYLOADS.slice(0, 3));
      given.push({ frame: frames.frame(idJson, payload), expected: text(idJson, payload) });
    }
    // Every frame still holds its own bytes at the end (none reused as scratch space).
    for (const { frame, expected } of given) expect(frame.toString('utf8')).toBe(expected);
  });
});

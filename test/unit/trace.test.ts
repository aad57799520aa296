/** Reading the platform's W3C trace context out of raw message bodies. */
import { traceContextOf } from '../../src/contracts/trace';

const TP = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
const buf = (value: unknown) => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value));

it.each([
  ['top level', { userId: 'u', _trace: { traceparent: TP } }],
  ['envelope', { eventId: 'e', payload: { userId: 'u' }, _trace: { traceparent: TP } }],
  ['envelope payload', { eventId: 'e', payload: { userId: 'u', _trace: { traceparent: TP } } }],
  ['upper case, spaces', { _trace: { traceparent: ` ${TP.toUpperCase()} ` } }],
])('finds it at the %s', (_where, body) => {
  expect(traceContextOf(buf(body), 10_000)).toEqual({ traceparent: TP, traceId: '0af7651916cd43dd8448eb211c80319c' });
});

it.each([
  ['no _trace', { userId: 'u' }],
  ['not JSON', 'not json "_trace"'],
  ['an array', [{ _trace: { traceparent: TP } }]],
  ['_trace not an object', { _trace: TP }],
  ['traceparent not a string', { _trace: { traceparent: 42 } }],
  ['a malformed traceparent', { _trace: { traceparent: '00-abc-def-01' } }],
  ['an all-zero trace id', { _trace: { traceparent: '00-00000000000000000000000000000000-b7ad6b7169203331-01' } }],
])('returns undefined for %s', (_what, body) => {
  expect(traceContextOf(buf(body), 10_000)).toBeUndefined();
});

it('does not parse a body larger than the limit', () => {
  expect(traceContextOf(buf({ _trace: { traceparent: TP }, pad: 'x'.repeat(200) }), 100)).toBeUndefined();
});

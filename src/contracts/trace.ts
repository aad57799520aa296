/**
 * The platform's trace context: its services put a W3C `traceparent` in the message body, under
 * `_trace` (top level, or the envelope's `payload`), e.g.
 * `{ "_trace": { "traceparent": "00-<32 hex trace id>-<16 hex span id>-01" }, ... }`.
 * The gateway logs it with the event's handling so a platform trace can be followed through here;
 * it is never forwarded (the event validators drop `_trace`).
 */

/** A message's trace context, for logs. */
export interface TraceContext {
  readonly traceparent: string;
  /** The 32-hex trace id inside `traceparent`. */
  readonly traceId: string;
}

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;
const MARKER = Buffer.from('"_trace"');

function fromTrace(value: unknown): TraceContext | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const traceparent = (value as Record<string, unknown>).traceparent;
  if (typeof traceparent !== 'string') return undefined;
  const match = TRACEPARENT.exec(traceparent.trim().toLowerCase());
  // An all-zero trace id is invalid per W3C Trace Context.
  if (!match || /^0+$/.test(match[2] as string)) return undefined;
  return { traceparent: match[0], traceId: match[2] as string };
}

/**
 * The trace context in a raw message body, or undefined (no `_trace`, not JSON, malformed). Cheap
 * for messages without one: the body is parsed only when it mentions `"_trace"`.
 */
export function traceContextOf(body: Buffer, maxBytes: number): TraceContext | undefined {
  if (body.length > maxBytes || !body.includes(MARKER)) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch {
    return undefined;
  }
  if (typeof parsed !== 'object' || parsed === null) return undefined;
  const record = parsed as Record<string, unknown>;
  const payload = record.payload;
  return (
    fromTrace(record._trace) ??
    (typeof payload === 'object' && payload !== null ? fromTrace((payload as Record<string, unknown>)._trace) : undefined)
  );
}

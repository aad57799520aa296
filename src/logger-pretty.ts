/**
 * Human-readable log lines for a terminal: `time LEVEL message key=value ...`, an error's stack on
 * the lines below. A pino destination of our own (not pino-pretty) so that production installs no
 * extra package and the JSON path stays pino's untouched fast path.
 */
import { inspect } from 'node:util';

/** pino's numeric levels. */
const LEVELS: Readonly<Record<number, { label: string; colour: string }>> = {
  10: { label: 'TRACE', colour: '90' },
  20: { label: 'DEBUG', colour: '36' },
  30: { label: 'INFO', colour: '32' },
  40: { label: 'WARN', colour: '33' },
  50: { label: 'ERROR', colour: '31' },
  60: { label: 'FATAL', colour: '1;41;97' },
};

/**
 * Record keys the line shows in its own place, or that are the same on every line of one process
 * (pid, hostname, the `service` base field) and would only push the useful fields off the screen.
 */
const SHOWN_ELSEWHERE = new Set(['level', 'time', 'msg', 'pid', 'hostname', 'service']);

export interface PrettyOptions {
  /** ANSI colours; off for `NO_COLOR` and for anything that is not a terminal. */
  readonly colour: boolean;
}

const paint = (on: boolean, code: string, text: string): string => (on ? `\u001b[${code}m${text}\u001b[0m` : text);

/** A bare word stays bare; anything a reader could misparse (spaces, `=`, quotes, empty) is JSON-quoted. */
function formatValue(value: unknown): string {
  if (typeof value === 'string') return /^[^\s="\\]+$/.test(value) ? value : JSON.stringify(value);
  if (value === null || typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (value === undefined) return 'undefined';
  try {
    return JSON.stringify(value);
  } catch {
    // Not JSON (a cycle, a BigInt): only when called with live objects, never with a parsed line.
    return inspect(value, { breakLength: Number.POSITIVE_INFINITY });
  }
}

/** A value shown as a word (level, message, error type): a primitive as `String` writes it, anything else as JSON. */
function asText(value: unknown): string {
  switch (typeof value) {
    case 'string':
      return value;
    case 'number':
    case 'boolean':
    case 'bigint':
    case 'symbol':
    case 'undefined':
      return String(value);
    default:
      return formatValue(value);
  }
}

function clock(time: unknown): string {
  const date = typeof time === 'number' || typeof time === 'string' ? new Date(time) : new Date();
  if (Number.isNaN(date.getTime())) return String(time);
  const two = (n: number) => String(n).padStart(2, '0');
  return `${two(date.getHours())}:${two(date.getMinutes())}:${two(date.getSeconds())}.${String(date.getMilliseconds()).padStart(3, '0')}`;
}

interface SerializedError {
  type?: unknown;
  message?: unknown;
  stack?: unknown;
  [key: string]: unknown;
}

const isSerializedError = (value: unknown): value is SerializedError =>
  typeof value === 'object' && value !== null && typeof (value as SerializedError).stack === 'string';

/**
 * One pino record (already parsed from its JSON line) as one or more terminal lines, ending in a
 * newline. Errors (pino serializes them with `type`, `message`, `stack`) show as `key=Type: message`
 * on the line, and their stack, indented, below it.
 */
export function formatLogRecord(record: Record<string, unknown>, options: PrettyOptions): string {
  const colour = options.colour;
  const level = LEVELS[record.level as number] ?? { label: asText(record.level ?? 'LOG').toUpperCase(), colour: '0' };
  const parts = [paint(colour, '2', clock(record.time)), paint(colour, level.colour, level.label.padEnd(5))];
  if (record.msg !== undefined && record.msg !== '') parts.push(asText(record.msg));
  const stacks: string[] = [];
  for (const [key, value] of Object.entries(record)) {
    if (SHOWN_ELSEWHERE.has(key)) continue;
    let shown: string;
    if (isSerializedError(value)) {
      const { type, message, stack, ...rest } = value;
      shown = formatValue(`${asText(type ?? 'Error')}: ${asText(message ?? '')}`);
      // Extra error properties (code, errno, ...) help diagnose; keep them on the line.
      for (const [extraKey, extra] of Object.entries(rest)) shown += ` ${key}.${extraKey}=${formatValue(extra)}`;
      stacks.push(String(stack));
    } else {
      shown = formatValue(value);
    }
    parts.push(`${paint(colour, '2', `${key}=`)}${shown}`);
  }
  const stackLines = stacks.flatMap((stack) => stack.split('\n').map((line) => `    ${paint(colour, '2', line.trimStart())}`));
  return [parts.join(' '), ...stackLines].join('\n') + '\n';
}

/** Anything `write` can go to: process.stdout, a file stream, a test's collector. */
export interface LogSink {
  write(text: string): unknown;
  on?(event: 'error', listener: (error: Error) => void): unknown;
}

/**
 * A pino destination that turns each JSON line pino writes into `formatLogRecord`'s lines on
 * `sink`. A line that is not a JSON object (it should not happen) is passed through as it came, so
 * nothing logged is ever lost to the formatter.
 */
export function prettyDestination(sink: LogSink, options: PrettyOptions): { write(chunk: string): void } {
  // A reader that went away (`npm start | head`) closes the pipe: EPIPE, unheard, would end the
  // process. Its lines have nowhere to go any more, so they are dropped.
  let broken = false;
  sink.on?.('error', () => {
    broken = true;
  });
  return {
    write(chunk: string) {
      if (broken) return;
      for (const line of chunk.split('\n')) {
        if (line === '') continue;
        let record: unknown;
        try {
          record = JSON.parse(line);
        } catch {
          record = undefined;
        }
        sink.write(
          typeof record === 'object' && record !== null && !Array.isArray(record)
            ? formatLogRecord(record as Record<string, unknown>, options)
            : `${line}\n`,
        );
      }
    },
  };
}

/** The terminal log format and the choice between it and JSON lines (no services). */
import { EventEmitter } from 'node:events';
import { loadConfig } from '../../src/config';
import { createLogger, usesPrettyFormat } from '../../src/logger';
import { formatLogRecord, prettyDestination } from '../../src/logger-pretty';

const ESC = '\u001b[';
const at = new Date(2026, 11, 4, 9, 5, 7, 42).getTime();

/** A sink that looks like a terminal (or not) and keeps what is written to it. */
function sink(isTTY: boolean) {
  const lines: string[] = [];
  return { lines, isTTY, write: (text: string) => void lines.push(text) };
}

describe('formatLogRecord', () => {
  it('writes time, level, message, then the bound fields as key=value, without colour when told', () => {
    const line = formatLogRecord(
      { level: 30, time: at, pid: 1, hostname: 'h', service: 'cloudphone-realtime', msg: 'listening', port: 4000, database: 'embedded' },
      { colour: false },
    );
    expect(line).toBe('09:05:07.042 INFO  listening port=4000 database=embedded\n');
  });

  it('quotes values a reader could misparse and writes objects as JSON', () => {
    const line = formatLogRecord(
      { level: 40, time: at, msg: 'odd', reason: 'not JSON', empty: '', eq: 'a=b', ok: true, none: null, limits: { maxDevices: 3 } },
      { colour: false },
    );
    expect(line).toBe('09:05:07.042 WARN  odd reason="not JSON" empty="" eq="a=b" ok=true none=null limits={"maxDevices":3}\n');
  });

  it('puts an error as Type: message on the line and its stack, indented, below it', () => {
    const line = formatLogRecord(
      {
        level: 50,
        time: at,
        msg: 'start-up failed',
        err: {
          type: 'Error',
          message: 'connect ECONNREFUSED',
          code: 'ECONNREFUSED',
          stack: 'Error: connect ECONNREFUSED\n    at connect (net.js:1:1)\n    at main (main.js:2:2)',
        },
      },
      { colour: false },
    );
    expect(line.split('\n')).toEqual([
      '09:05:07.042 ERROR start-up failed err="Error: connect ECONNREFUSED" err.code=ECONNREFUSED',
      '    Error: connect ECONNREFUSED',
      '    at connect (net.js:1:1)',
      '    at main (main.js:2:2)',
      '',
    ]);
  });

  it('colours the level (red for error, yellow for warn) and dims the time and keys', () => {
    const error = formatLogRecord({ level: 50, time: at, msg: 'boom', id: 7 }, { colour: true });
    expect(error).toBe(`${ESC}2m09:05:07.042${ESC}0m ${ESC}31mERROR${ESC}0m boom ${ESC}2mid=${ESC}0m7\n`);
    expect(formatLogRecord({ level: 40, time: at, msg: 'hm' }, { colour: true })).toContain(`${ESC}33mWARN ${ESC}0m`);
  });
});

describe('prettyDestination', () => {
  it('formats every JSON line pino writes and passes anything else through unchanged', () => {
    const out = sink(true);
    const destination = prettyDestination(out, { colour: false });
    destination.write(`${JSON.stringify({ level: 20, time: at, msg: 'one' })}\n`);
    destination.write('not json at all\n');
    expect(out.lines).toEqual(['09:05:07.042 DEBUG one\n', 'not json at all\n']);
  });

  it('stops writing, without throwing, once its stream fails (a closed pipe)', () => {
    const lines: string[] = [];
    const stream = Object.assign(new EventEmitter(), { isTTY: false, write: (text: string) => void lines.push(text) });
    const destination = prettyDestination(stream, { colour: false });
    destination.write(`${JSON.stringify({ level: 30, time: at, msg: 'before' })}\n`);
    // An 'error' nobody listens to would throw here (and end the process).
    expect(() => stream.emit('error', Object.assign(new Error('write EPIPE'), { code: 'EPIPE' }))).not.toThrow();
    destination.write(`${JSON.stringify({ level: 30, time: at, msg: 'after' })}\n`);
    expect(lines).toEqual(['09:05:07.042 INFO  before\n']);
  });
});

describe('createLogger', () => {
  it('writes readable lines to a terminal outside production, with the stack and without the token', () => {
    const out = sink(true);
    const logger = createLogger('info', { stream: out });
    logger.error({ err: new TypeError('bad thing'), token: 'secret-token' }, 'it failed');
    const text = out.lines.join('');
    expect(text).toMatch(new RegExp(`^${ESC.replace('[', '\\[')}2m\\d\\d:\\d\\d:\\d\\d\\.\\d{3}`));
    expect(text).toContain(`${ESC}31mERROR${ESC}0m it failed`);
    expect(text).toContain('"TypeError: bad thing"');
    expect(text).toContain(`\n    ${ESC}2mat `); // the stack, dimmed, below the line
    expect(text).not.toContain('secret-token');
  });

  it('drops the colours for NO_COLOR but keeps the readable format', () => {
    const out = sink(true);
    createLogger('info', { stream: out, noColor: true }).info({ user: 'alice' }, 'hello');
    expect(out.lines.join('')).toMatch(/^\d\d:\d\d:\d\d\.\d{3} INFO {2}hello user=alice\n$/);
  });

  it('writes JSON lines to a pipe, in production, and when LOG_FORMAT=json', () => {
    for (const [options, why] of [
      [{ stream: sink(false) }, 'pipe'],
      [{ stream: sink(true), production: true }, 'production'],
      [{ stream: sink(true), format: 'json' as const }, 'json'],
    ] as const) {
      createLogger('info', options).info({ user: 'alice' }, 'hello');
      const written = options.stream.lines.join('');
      expect([why, JSON.parse(written)]).toEqual([why, expect.objectContaining({ level: 30, msg: 'hello', user: 'alice' })]);
    }
  });

  it('writes readable lines without colour to a pipe when LOG_FORMAT=pretty, also in production', () => {
    const out = sink(false);
    createLogger('info', { stream: out, format: 'pretty', production: true }).warn('careful');
    expect(out.lines.join('')).toMatch(/^\d\d:\d\d:\d\d\.\d{3} WARN {2}careful\n$/);
  });
});

describe('LOG_FORMAT', () => {
  it('auto means readable only on a terminal outside production', () => {
    expect(usesPrettyFormat({ stream: sink(true) })).toBe(true);
    expect(usesPrettyFormat({ stream: sink(false) })).toBe(false);
    expect(usesPrettyFormat({ stream: sink(true), production: true })).toBe(false);
    expect(usesPrettyFormat({ stream: sink(false), format: 'pretty' })).toBe(true);
    expect(usesPrettyFormat({ stream: sink(true), format: 'json' })).toBe(false);
  });
});

describe('NO_COLOR', () => {
  it('is on for any non-empty value (https://no-color.org) and off when unset or empty', () => {
    expect([{}, { NO_COLOR: '' }, { NO_COLOR: '1' }, { NO_COLOR: 'false' }].map((env) => loadConfig(env).noColor)).toEqual([
      false,
      false,
      true,
      true,
    ]);
  });
});

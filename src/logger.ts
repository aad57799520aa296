import pino, { type Logger } from 'pino';
import { ConfigError, type LogLevel } from './config';
import { prettyDestination, type LogSink } from './logger-pretty';

/**
 * `LOG_FORMAT`: `auto` (readable lines when stdout is a terminal outside production, JSON lines
 * otherwise), `json`, or `pretty` (readable lines wherever they go). @default 'auto'
 */
export type LogFormat = 'auto' | 'json' | 'pretty';

const FORMATS: readonly LogFormat[] = ['auto', 'json', 'pretty'];

/** Reads `LOG_FORMAT`'s value; unset or empty is `auto`, anything else unknown is a configuration error. */
export function parseLogFormat(value: string | undefined): LogFormat {
  if (value === undefined || value.trim() === '') return 'auto';
  const format = value.trim().toLowerCase();
  if ((FORMATS as readonly string[]).includes(format)) return format as LogFormat;
  throw new ConfigError(`LOG_FORMAT must be one of ${FORMATS.join(', ')} (got ${JSON.stringify(value)})`);
}

export interface LoggerOptions {
  /** @default 'auto' */
  readonly format?: LogFormat;
  /** Production always logs JSON under `auto` (log shippers read it). @default false */
  readonly production?: boolean;
  /** `NO_COLOR` set (and not empty): readable lines without ANSI colours. @default false */
  readonly noColor?: boolean;
  /** Where the lines go. @default process.stdout */
  readonly stream?: LogSink & { readonly isTTY?: boolean };
}

/** Whether `auto` (or a forced format) ends up as readable lines. */
export function usesPrettyFormat(options: LoggerOptions): boolean {
  const format = options.format ?? 'auto';
  if (format !== 'auto') return format === 'pretty';
  return !options.production && (options.stream ?? process.stdout).isTTY === true;
}

/** Structured logs on stdout (JSON lines, or readable lines in a terminal); tokens never reach them. */
export function createLogger(level: LogLevel, options: LoggerOptions = {}): Logger {
  const stream = options.stream ?? process.stdout;
  const settings = {
    level,
    base: { service: 'cloudphone-realtime' },
    // Top-level keys too: `logger.warn({ token }, ...)` must not print the token either.
    redact: ['authorization', 'token', 'req.headers.authorization', 'connectionParams', '*.authorization', '*.token'],
  };
  if (!usesPrettyFormat(options)) return options.stream ? pino(settings, options.stream as pino.DestinationStream) : pino(settings);
  const colour = !options.noColor && stream.isTTY === true;
  return pino(settings, prettyDestination(stream, { colour }));
}

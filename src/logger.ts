import pino, { type Logger } from 'pino';
import type { LogFormat, LogLevel } from './config';
import { prettyDestination, type LogSink } from './logger-pretty';

export interface LoggerOptions {
  /** `LOG_FORMAT`: `auto` is readable lines on a terminal outside production, JSON otherwise. @default 'auto' */
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

import pino, { type Logger } from 'pino';
import type { LogLevel } from './config';

/** Structured JSON logs on stdout; tokens never reach them. */
export function createLogger(level: LogLevel): Logger {
  return pino({
    level,
    base: { service: 'cloudphone-realtime' },
    redact: ['req.headers.authorization', 'connectionParams', '*.authorization', '*.token'],
  });
}

/** loadConfig -> buildApp -> start; SIGTERM/SIGINT -> graceful stop. */
import { buildApp } from './app';
import { ConfigError, loadConfig } from './config';
import { createLogger } from './logger';

async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`cloudphone-realtime: configuration error: ${error.message}\n`);
      process.exit(78); // EX_CONFIG
    }
    throw error;
  }
  const logger = createLogger(config.logLevel, {
    format: config.logFormat,
    production: config.production,
    noColor: config.noColor,
  });
  const app = buildApp(config, logger);

  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down');
    app.stop().then(
      () => process.exit(0),
      (error: unknown) => {
        logger.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  // Input never crashes the process; a bug that escapes is logged, not fatal to other users.
  process.on('unhandledRejection', (reason) => logger.error({ err: reason }, 'unhandled rejection'));

  try {
    await app.start();
  } catch (error) {
    logger.fatal({ err: error }, 'start-up failed');
    await app.stop().catch(() => undefined);
    process.exit(1);
  }
}

void main();

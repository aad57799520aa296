/**
 * A part of the running gateway (the database, the fan-out, the ingest, the HTTP server): it
 * starts, stops, and says what it is. `app.ts` starts the parts in order and stops them in
 * reverse, so each part may rely on the ones before it being up.
 */
import type { Logger } from 'pino';

export interface Part {
  readonly name: string;
  start(): Promise<void>;
  /** Undoes `start`; called also when `start` failed half way, so it must tolerate that. */
  stop(): Promise<void>;
}

/** Starts `parts` in order; on a failure, what was started is left for `stopParts`. */
export async function startParts(parts: readonly Part[], logger: Logger): Promise<void> {
  for (const part of parts) {
    const began = Date.now();
    await part.start();
    logger.debug({ part: part.name, ms: Date.now() - began }, 'started');
  }
}

/** Stops `parts` in reverse order; one failing part does not keep the others running. */
export async function stopParts(parts: readonly Part[], logger: Logger): Promise<void> {
  for (const part of [...parts].reverse()) {
    const began = Date.now();
    try {
      await part.stop();
    } catch (error) {
      logger.error({ err: error, part: part.name }, 'stopping failed');
    }
    logger.debug({ part: part.name, ms: Date.now() - began }, 'stopped');
  }
}

/**
 * `POST /dev/events`: how `npm run publish-event` reaches the in-process event bus, which lives
 * inside the server process. Mounted only when the gateway runs without AMQP_URL and outside
 * production (production refuses the in-process bus anyway), and only for an administrator's
 * token: it puts a message on the bus exactly as RabbitMQ would deliver it, so it goes through the
 * same bridge, validation and dead-lettering.
 *
 * Body: `{ "routingKey": "quota.updated", "body": "<the message body, as text>", "messageId"?: "..." }`.
 * Answers 202 `{ messageId, routed }` (`routed` false: no binding takes that routing key).
 */
import { randomUUID } from 'node:crypto';
import express, { type Router } from 'express';
import type { Logger } from 'pino';
import { stripBearer, type TokenVerifier } from '../../auth/jwt';
import { ErrorCode } from '../../contracts/errors';
import type { RawMessageInjector } from '../../contracts/ports';
import { QUEUE_BINDINGS, topicMatches } from '../../contracts/routing';

export const DEV_EVENTS_PATH = '/dev/events';

const ROUTING_KEY = /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/;

export function devEventsRouter(deps: {
  bus: RawMessageInjector;
  verifier: TokenVerifier;
  maxMessageBytes: number;
  logger: Logger;
}): Router {
  const { bus, verifier, maxMessageBytes, logger } = deps;
  const router = express.Router();
  const fail = (res: express.Response, status: number, code: string, message: string) =>
    res.status(status).json({ errors: [{ message, extensions: { code } }] });

  router.post(DEV_EVENTS_PATH, express.json({ limit: maxMessageBytes * 2 + 1_024 }), async (req, res) => {
    const header = req.headers.authorization;
    let admin = false;
    try {
      admin = header ? (await verifier.verify(stripBearer(header))).isAdmin : false;
    } catch {
      admin = false;
    }
    if (!header) return fail(res, 401, ErrorCode.UNAUTHENTICATED, 'An administrator token is required');
    if (!admin) return fail(res, 403, ErrorCode.FORBIDDEN, 'Only administrators may publish test events');

    const { routingKey, body, messageId } = (req.body ?? {}) as Record<string, unknown>;
    if (typeof routingKey !== 'string' || !ROUTING_KEY.test(routingKey)) {
      return fail(res, 400, ErrorCode.BAD_USER_INPUT, 'routingKey must be a dotted routing key such as quota.updated');
    }
    if (typeof body !== 'string') {
      return fail(res, 400, ErrorCode.BAD_USER_INPUT, 'body must be the message body as a string');
    }
    if (messageId !== undefined && (typeof messageId !== 'string' || messageId.trim() === '')) {
      return fail(res, 400, ErrorCode.BAD_USER_INPUT, 'messageId must be a non-empty string');
    }
    const id = messageId ?? randomUUID();
    const routed = QUEUE_BINDINGS.some((binding) => topicMatches(binding, routingKey));
    try {
      bus.publishRaw(routingKey, Buffer.from(body, 'utf8'), { messageId: id, timestamp: Date.now() });
    } catch (error) {
      return fail(res, 503, ErrorCode.INTERNAL_SERVER_ERROR, error instanceof Error ? error.message : String(error));
    }
    logger.info({ routingKey, messageId: id, routed }, 'test event published to the in-process bus');
    res.status(202).json({ messageId: id, routed });
  });
  return router;
}

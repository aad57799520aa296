/**
 * Which HTTP requests stream (docs/transports.md): mounted on `/graphql` in front of Apollo, after
 * the body parser, the NUL guard, the bearer check and the rate limit.
 *
 * - `/graphql` with a subscription document: multipart HTTP when `Accept` asks for
 *   `multipart/mixed;subscriptionSpec=1.0` (quoted or not), SSE when it asks for
 *   `text/event-stream`; otherwise `STREAMING_TRANSPORT_REQUIRED` (406), or `UNAUTHENTICATED`
 *   (401) without a token. Queries and mutations go on to Apollo whatever the `Accept` (one that
 *   names only the multipart type is answered as JSON).
 * - `/graphql/stream`: GraphQL over SSE (graphql-sse's distinct connections mode), `GET` with
 *   `query`/`variables`/`operationName`/`extensions` parameters for `EventSource`, `POST` with a
 *   JSON body for the graphql-sse client; `Last-Event-ID` resumes like `after`. The token comes
 *   from `Authorization: Bearer`, or, because `EventSource` cannot set headers, from the `token`
 *   query parameter (never logged: nothing here logs a URL).
 */
import type { Request, RequestHandler, Response } from 'express';
import { OperationTypeNode, type GraphQLFormattedError } from 'graphql';
import { stripBearer } from '../../auth/jwt';
import { ErrorCode, StreamingTransportRequiredError, type UnauthenticatedError } from '../../contracts/errors';
import type { OperationLayer, OperationRequest } from '../../graphql/operation-layer';
import { MultipartStream, acceptsMultipartSubscription } from '../multipart/multipart-stream';
import { SseStream, acceptsEventStream } from '../sse/sse-stream';
import { streamError, type HttpStreamOptions, type StreamRegistry } from './http-stream';

const UNAUTHENTICATED = 'Authentication required: send "Authorization: Bearer <jwt>" (EventSource on /graphql/stream: ?token=<jwt>)';

/** The largest `Last-Event-ID` passed on; longer ones get the same BAD_USER_INPUT as a long `after`. */
const MAX_LAST_EVENT_ID = 1_024;

function refuse(res: Response, status: number, errors: readonly GraphQLFormattedError[]): void {
  res.status(status).json({ errors });
}

/** GraphQL-over-HTTP parameters from a POST body or GET query; a string when malformed. */
function operationRequest(req: Request): OperationRequest | string {
  // express types a parsed body as `any`: unknown until it is known to be an object.
  const raw: unknown = req.method === 'GET' ? req.query : (req.body ?? {});
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return 'the body must be a JSON object';
  const source = raw as Record<string, unknown>;
  const json = (name: string): Record<string, unknown> | null | string => {
    const value = source[name];
    if (value === undefined || value === null || value === '') return null;
    if (req.method !== 'GET') return value as Record<string, unknown>;
    if (typeof value !== 'string') return `${name} must be JSON text`;
    try {
      return JSON.parse(value) as Record<string, unknown>;
    } catch {
      return `${name} must be JSON text`;
    }
  };
  const variables = json('variables');
  const extensions = json('extensions');
  if (typeof variables === 'string') return variables;
  if (typeof extensions === 'string') return extensions;
  if (typeof source.query !== 'string' || source.query.trim() === '') return 'query must be a non-empty string';
  const operationName = typeof source.operationName === 'string' && source.operationName !== '' ? source.operationName : null;
  return { query: source.query, variables, operationName, extensions };
}

export function streamingHandler(deps: {
  layer: OperationLayer;
  registry: StreamRegistry;
  options: HttpStreamOptions;
  isStopping: () => boolean;
}): RequestHandler {
  const { layer, registry, options } = deps;
  const bad = (res: Response, message: string) => refuse(res, 400, [streamError(ErrorCode.BAD_REQUEST, message)]);

  return (req, res, next) => {
    const stream = req.path === '/stream';
    if ((req.path !== '/' && !stream) || (req.method !== 'GET' && req.method !== 'POST')) return next();
    const accept = req.headers.accept;
    const multipart = !stream && acceptsMultipartSubscription(accept);
    const sse = stream || acceptsEventStream(accept);

    const request = operationRequest(req);
    if (typeof request === 'string') return stream ? bad(res, request) : next();
    const prepared = layer.prepare(request);
    if (!('document' in prepared)) return stream ? refuse(res, 400, layer.formatErrors(prepared)) : next();
    if (!stream && prepared.operation !== OperationTypeNode.SUBSCRIPTION) {
      // Apollo answers queries and mutations; an Accept naming only the stream type still gets JSON.
      if ((multipart || sse) && !/json/i.test(accept ?? '')) req.headers.accept = 'application/json';
      return next();
    }
    if (req.method === 'GET' && prepared.operation === OperationTypeNode.MUTATION) {
      return refuse(res, 405, [streamError(ErrorCode.BAD_REQUEST, 'Mutations are not allowed over GET: use POST')]);
    }

    const auth = res.locals.auth as { error?: UnauthenticatedError } | undefined;
    if (auth?.error) return refuse(res, 401, layer.formatErrors([auth.error]));
    const header = req.headers.authorization;
    const queryToken = stream && typeof req.query.token === 'string' ? req.query.token : undefined;
    const token = header ? stripBearer(header) : queryToken;
    if (!token) return refuse(res, 401, [streamError(ErrorCode.UNAUTHENTICATED, UNAUTHENTICATED)]);
    if (!multipart && !sse) return refuse(res, 406, layer.formatErrors([new StreamingTransportRequiredError()]));
    if (deps.isStopping())
      return refuse(res, 503, [streamError(ErrorCode.SHUTTING_DOWN, 'Going away: the server is shutting down; reconnect')]);

    let resumeAfter: string | undefined;
    const lastEventId = req.headers['last-event-id'];
    if (sse && typeof lastEventId === 'string' && lastEventId !== '') resumeAfter = lastEventId.slice(0, MAX_LAST_EVENT_ID + 1);

    const handler = multipart ? new MultipartStream(res, layer, registry, options) : new SseStream(res, layer, registry, options);
    handler.run(token, resumeAfter === undefined ? request : { ...request, resumeAfter }).catch((error: unknown) => {
      layer.logger.error({ err: error }, 'stream failed');
      if (!res.headersSent) refuse(res, 500, [streamError(ErrorCode.INTERNAL_SERVER_ERROR, 'Internal server error')]);
      else res.destroy();
    });
  };
}

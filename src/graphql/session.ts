/**
 * A `Session` is one authenticated connection (a socket, a multipart or SSE stream) in the
 * operation layer (./operation-layer.ts): its user, its live operations by id (compared by
 * identity after every `await`), its expiry timer, renewal and revocation, and its slot in the
 * per-user count. Each `Operation` is one small object: there is one per live subscription.
 */
import {
  createSourceEventStream,
  execute,
  getOperationAST,
  GraphQLError,
  Kind,
  OperationTypeNode,
  type ArgumentNode,
  type DocumentNode,
  type FieldNode,
  type OperationDefinitionNode,
  type SelectionNode,
  type ExecutionArgs,
  type ExecutionResult,
  type GraphQLSchema,
} from 'graphql';
import type { AuthUser, ConnectionControl, TransportName } from '../contracts/context';
import { BadUserInputError, ForbiddenError, TooManySubscriptionsError } from '../contracts/errors';
import type { GatewayEvent } from '../contracts/events';
import type { Consumer } from '../lib/event-queue';
import type { Scheduled } from '../lib/deadlines';
import { SmallMap } from '../lib/small-map';
import { isPushSource, type PushSource } from './push-delivery';

import type { OperationLayer, OperationRef, OperationRequest, OperationSink, Selection, SessionTransport } from './operation-layer';

/** The payload last handed out, by event and selection (each layer interns its own). */
const LAST_PAYLOAD: { event: object | undefined; selection: Selection | undefined; json: string } = {
  event: undefined,
  selection: undefined,
  json: '',
};

/**
 * One operation while it lives in its session; its identity is what `Session.live` compares. A
 * class with methods rather than closures, and its stream's consumer itself: there is one per
 * live subscription (heap per socket, docs/decisions/0605).
 */
class Operation implements OperationRef, Consumer<object> {
  readonly idJson: string;
  /** Set once a subscription's stream is attached. */
  source: PushSource<object> | undefined;
  private selection: Selection | undefined;

  constructor(
    readonly id: string,
    private readonly session: Session,
    private readonly layer: OperationLayer,
    readonly sink: OperationSink,
  ) {
    this.idJson = JSON.stringify(id);
  }

  attach(source: PushSource<object>, selection: Selection): void {
    this.source = source;
    this.selection = selection;
    source.attach(this);
  }

  /** One event of the stream: framed now, or false while the connection cannot take it. */
  offer(event: object): boolean {
    const { sink } = this;
    if (!sink.ready(this)) return false;
    // An event reaches its subscribers one after another: most ask for the payload just made.
    const last = LAST_PAYLOAD;
    const selection = this.selection!;
    if (event !== last.event || selection !== last.selection) {
      last.json = this.layer.execution.payload(event, selection.key, selection.args);
      last.event = event;
      last.selection = selection;
    }
    sink.next(this, last.json, event as GatewayEvent);
    return true;
  }

  /** The stream ended by itself. */
  ended(error?: Error): void {
    this.session.ended(this, error);
  }

  stop(): void {
    void this.source?.return?.()?.catch(() => undefined);
  }
}

/**
 * One authenticated connection (a socket, a multipart or SSE stream): its user, its live
 * operations by id, its token's expiry (one slot in the layer's shared `Deadlines`, not a timer of
 * its own) and its slot in the per-user count.
 */
export class Session implements ConnectionControl, Scheduled {
  /** Usually one or two: no `Map` for the first (heap per socket). */
  private readonly operations = new SmallMap<string, Operation>();
  private closed = false;
  private slowEnded = false;
  private current: AuthUser;
  /** @internal Its place among the layer's expiries (lib/deadlines.ts). */
  deadlineSlot = -1;

  constructor(
    private readonly layer: OperationLayer,
    user: AuthUser,
    /** This instance's number for the connection; its id in the shared registry is `layer.connectionId(seq)`. */
    private readonly connectionSeq: number,
    private readonly peer: SessionTransport,
    readonly transport: TransportName,
  ) {
    this.current = user;
    layer.expiries.schedule(this, user.expiresAt);
  }

  /** The credentials now: the connection's token, or the last one `renew` accepted. */
  get user(): AuthUser {
    return this.current;
  }

  /**
   * `ConnectionControl.renew`: the same `sub`, verified (signature, expiry, revocation) like a
   * connecting token; operations keep running, the expiry timer moves to the new `exp`.
   */
  async renew(token: string): Promise<number> {
    const refuse = (message: string) => {
      this.layer.sessionCounters.renewalsRefused++;
      return new ForbiddenError(`Session renewal refused: ${message}; the connection keeps its current token`);
    };
    let next: AuthUser;
    try {
      next = await this.layer.verify(token);
    } catch (error) {
      this.layer.logger.debug({ err: error, userId: this.current.id }, 'session renewal refused');
      throw refuse('the token is invalid, expired or revoked');
    }
    if (next.id !== this.current.id) throw refuse('the token is for another user');
    if (next.expiresAt <= Date.now()) throw refuse('the token is expired');
    if (this.closed) throw refuse('the connection is closed');
    this.current = next;
    this.layer.expiries.schedule(this, next.expiresAt);
    this.layer.sessionCounters.renewals++;
    return next.expiresAt;
  }

  /** @internal The user's sessions were revoked: ended, and the transport told. */
  revoke(): void {
    if (this.closed) return;
    this.layer.sessionCounters.transports[this.transport].revoked++;
    this.end();
    this.peer.revoked('Forbidden: sessions revoked');
  }

  /** Operations running now. */
  get size(): number {
    return this.operations.size;
  }

  has(id: string): boolean {
    return this.operations.has(id);
  }

  /**
   * Runs one operation; resolves once it is set up (a subscription attached, a query answered).
   * The transport checks `has(id)` first: a duplicate id is a protocol matter (4409 on a socket).
   */
  async start(id: string, request: OperationRequest, sink: OperationSink): Promise<void> {
    const { layer } = this;
    const operation = new Operation(id, this, layer, sink);
    this.operations.set(id, operation);
    const refuse = (errors: readonly GraphQLError[]) => {
      if (!this.live(operation)) return;
      this.operations.delete(id);
      sink.error(operation, layer.formatErrors(errors));
    };
    const answer = (result: ExecutionResult) => {
      if (!this.live(operation)) return;
      this.operations.delete(id);
      sink.result(operation, layer.formatResult(result));
      sink.complete(operation);
    };

    if (this.operations.size > layer.options.maxOperationsPerSession) {
      layer.counters.tooManySubscriptions++;
      return refuse([new TooManySubscriptionsError(layer.options.maxOperationsPerSession)]);
    }
    if (request.variables != null && (typeof request.variables !== 'object' || Array.isArray(request.variables))) {
      return refuse([new BadUserInputError('variables must be an object')]);
    }
    const prepared = layer.prepare(request);
    if (!('document' in prepared)) return refuse(prepared);
    if (prepared.operation !== OperationTypeNode.SUBSCRIPTION) {
      const limited = await layer.rateLimited(this.user);
      if (limited) return refuse([limited]);
      if (!this.live(operation)) return;
    }
    const args: ExecutionArgs = {
      schema: layer.schema,
      document:
        request.resumeAfter !== undefined && prepared.operation === OperationTypeNode.SUBSCRIPTION
          ? withAfter(prepared.document, request.operationName, request.resumeAfter, layer.schema)
          : prepared.document,
      operationName: request.operationName,
      variableValues: request.variables,
      contextValue: layer.context(this.user, this),
    };
    if (prepared.operation !== OperationTypeNode.SUBSCRIPTION) return answer(await execute(args));

    const source = await createSourceEventStream(args);
    if (!isAsyncIterable(source)) return answer(source); // the field refused: its errors, then complete
    if (!this.live(operation)) {
      await (source as Partial<AsyncIterator<unknown>>).return?.();
      return;
    }
    if (!isPushSource<object>(source)) throw new Error(`subscription ${id}: its stream cannot be pushed`);
    // What the payload needs, without the context: that lives on in the stream only as needed.
    // The original document: `after` does not change a payload, so resumed and live subscribers
    // with the same selection share one execution per event.
    const selection: ExecutionArgs = {
      schema: layer.schema,
      document: prepared.document,
      operationName: args.operationName,
      variableValues: args.variableValues,
    };
    operation.attach(source, layer.selection(selection));
  }

  /** @internal A subscription's stream ended by itself (not by `stop` or the connection). */
  ended(operation: Operation, error?: Error): void {
    // Stopped by the client or the connection: already removed, nothing to tell.
    if (!this.live(operation)) return;
    this.operations.delete(operation.id);
    if (error) operation.sink.error(operation, this.layer.formatErrors([new GraphQLError(error.message, { originalError: error })]));
    else operation.sink.complete(operation);
  }

  private live(operation: Operation): boolean {
    return !this.closed && this.operations.get(operation.id) === operation;
  }

  /** The client stopped an operation: released, and nothing more is sent for it. */
  stop(id: string): void {
    const operation = this.operations.get(id);
    this.operations.delete(id);
    operation?.stop();
  }

  /** The connection can take frames again: offer what waited. */
  flush(): void {
    for (const operation of this.operations.values()) operation.source?.flush();
  }

  /** `ConnectionControl`: a subscription's buffer overflowed. */
  slowConsumer(reason: string): void {
    if (this.slowEnded || this.closed) return;
    this.slowEnded = true;
    this.layer.counters.slowConsumerCloses++;
    this.layer.sessionCounters.transports[this.transport].slowConsumer++;
    this.layer.logger.warn({ userId: this.user.id, transport: this.transport, reason }, 'slow consumer: ending its connection');
    this.stopAll();
    this.peer.slow(reason);
  }

  /** The connection is gone: every operation stopped, the slot released, timers cleared. Idempotent. */
  end(): void {
    if (this.closed) return;
    this.closed = true;
    this.layer.expiries.cancel(this);
    this.stopAll();
    this.layer.closed(this);
    this.layer.release(this.user.id, this.layer.connectionId(this.connectionSeq));
  }

  private stopAll(): void {
    const operations = this.operations.values();
    this.operations.clear();
    for (const operation of operations) operation.stop();
  }

  /** @internal The token expired (the layer's `Deadlines` calls it). */
  expire(): void {
    if (this.closed) return;
    this.layer.sessionCounters.transports[this.transport].expired++;
    this.peer.expired();
  }
}

/**
 * The document with `after: "<eventId>"` on the subscription's root field(s) that take `after`
 * (replacing one the client wrote): `Last-Event-ID` resumes exactly as `after` does, through the
 * same resolver, the same validation and the same HISTORY_EXPIRED.
 */
function withAfter(document: DocumentNode, operationName: string | null | undefined, after: string, schema: GraphQLSchema): DocumentNode {
  const operation = getOperationAST(document, operationName);
  const fields = schema.getSubscriptionType()?.getFields() ?? {};
  if (!operation) return document;
  const selections = operation.selectionSet.selections.map((selection): SelectionNode => {
    if (selection.kind !== Kind.FIELD || !fields[selection.name.value]?.args.some((arg) => arg.name === 'after')) return selection;
    const argument: ArgumentNode = {
      kind: Kind.ARGUMENT,
      name: { kind: Kind.NAME, value: 'after' },
      value: { kind: Kind.STRING, value: after },
    };
    const field: FieldNode = {
      ...selection,
      arguments: [...(selection.arguments ?? []).filter((arg) => arg.name.value !== 'after'), argument],
    };
    return field;
  });
  const rewritten: OperationDefinitionNode = { ...operation, selectionSet: { ...operation.selectionSet, selections } };
  return { ...document, definitions: document.definitions.map((definition) => (definition === operation ? rewritten : definition)) };
}

function isAsyncIterable(value: AsyncIterable<unknown> | ExecutionResult): value is AsyncIterable<unknown> {
  return typeof (value as Partial<AsyncIterable<unknown>> | undefined)?.[Symbol.asyncIterator] === 'function';
}

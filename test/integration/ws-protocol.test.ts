/**
 * The `graphql-transport-ws` behaviours the gateway's own socket server (src/transports/ws) provides
 * beyond the close codes hostile-input.test.ts covers: keep-alive, queries and mutations over the
 * socket, `complete` from the client, the stream's own end, and several operations on one socket
 * sharing the pushed frames. Real gateway, real graphql-ws clients and a bare-TCP client.
 */
import WebSocket from 'ws';
import { QuotaChangedDocument } from '../generated/graphql';
import { subscribe, token, wsClient } from '../helpers/clients';
import { waitForSubscriptions } from '../helpers/gateway';
import { connectRaw } from '../helpers/raw-ws';
import { uniqueId } from '../helpers/services';
import { gatewaySuite } from '../helpers/suite';
import { deferred, within } from '../helpers/wait';

const KEEPALIVE_MS = 300;
const suite = gatewaySuite({ WS_KEEPALIVE_MS: String(KEEPALIVE_MS), EVENT_COALESCE_MS: '0' });
const bearer = (sub: string, roles?: string[]) => ({ authorization: `Bearer ${token(sub, { roles })}` });

it('terminates a peer that stops answering pings, and keeps one that answers', async () => {
  // The bare-TCP client never answers a ping; graphql-ws' client (ws) always does.
  const silent = await connectRaw(suite.gateway.wsUrl);
  silent.json({ type: 'connection_init', payload: bearer(uniqueId('silent')) });
  expect(await silent.message('the ack')).toEqual({ type: 'connection_ack' });
  const answering = wsClient(suite.gateway.wsUrl, bearer(uniqueId('answering')));
  await answering.connected;
  // Terminated (no close frame: 1006) within two sweeps of the keep-alive.
  await expect(within(silent.closed, 'the silent peer to be dropped', 10 * KEEPALIVE_MS)).resolves.toBe(1006);
  // A `ws` peer answers pings by itself: after four sweeps it is still served.
  const pinged = new WebSocket(suite.gateway.wsUrl, 'graphql-transport-ws');
  let pings = 0;
  const fourPings = deferred<void>();
  pinged.on('ping', () => ++pings === 4 && fourPings.resolve());
  pinged.on('open', () => pinged.send(JSON.stringify({ type: 'connection_init', payload: bearer(uniqueId('pinged')) })));
  await within(fourPings.promise, 'four keep-alive pings', 20 * KEEPALIVE_MS);
  expect(pinged.readyState).toBe(WebSocket.OPEN);
  pinged.close();
  const still = await answering.client.iterate({ query: '{ __typename }' }).next();
  expect(still.value).toEqual({ data: { __typename: 'Query' } });
  silent.destroy();
});

it('answers a query over the socket with next then complete under its id, and keeps the socket open', async () => {
  const raw = await connectRaw(suite.gateway.wsUrl);
  try {
    raw.json({ type: 'connection_init', payload: bearer(uniqueId('query')) });
    expect(await raw.message()).toEqual({ type: 'connection_ack' });
    raw.json({ id: 'q1', type: 'subscribe', payload: { query: '{ __typename }' } });
    expect(await raw.message()).toEqual({ id: 'q1', type: 'next', payload: { data: { __typename: 'Query' } } });
    expect(await raw.message()).toEqual({ id: 'q1', type: 'complete' });
    // The id is free again once completed.
    raw.json({ id: 'q1', type: 'subscribe', payload: { query: 'query Again { __typename }' } });
    expect(await raw.message()).toEqual({ id: 'q1', type: 'next', payload: { data: { __typename: 'Query' } } });
    expect(await raw.message()).toEqual({ id: 'q1', type: 'complete' });
  } finally {
    raw.destroy();
  }
});

it('stops pushing to an operation the client completed, while another on the same socket goes on', async () => {
  const user = uniqueId('complete');
  const raw = await connectRaw(suite.gateway.wsUrl);
  try {
    raw.json({ type: 'connection_init', payload: bearer(user) });
    expect(await raw.message()).toEqual({ type: 'connection_ack' });
    const query = 'subscription { quotaChanged { eventId } }';
    raw.json({ id: 'a', type: 'subscribe', payload: { query } });
    raw.json({ id: 'b', type: 'subscribe', payload: { query } });
    await waitForSubscriptions(suite.gateway, 2);
    await suite.peer.publish('quota.updated', { userId: user }, { messageId: `one-${user}` });
    // The same shared payload, once under each operation's id.
    const first = [await raw.message(), await raw.message()].sort((x, y) => String(x.id).localeCompare(String(y.id)));
    expect(first).toEqual([
      { id: 'a', type: 'next', payload: { data: { quotaChanged: { eventId: `one-${user}` } } } },
      { id: 'b', type: 'next', payload: { data: { quotaChanged: { eventId: `one-${user}` } } } },
    ]);
    raw.json({ id: 'a', type: 'complete' });
    await waitForSubscriptions(suite.gateway, 1);
    await suite.peer.publish('quota.updated', { userId: user }, { messageId: `two-${user}` });
    expect(await raw.message()).toEqual({ id: 'b', type: 'next', payload: { data: { quotaChanged: { eventId: `two-${user}` } } } });
    // Nothing for `a` (a ping's pong is the next thing on the wire).
    raw.json({ type: 'ping' });
    expect(await raw.message()).toEqual({ type: 'pong' });
  } finally {
    raw.destroy();
  }
  await waitForSubscriptions(suite.gateway, 0);
});

it('releases every operation of a socket that goes away, and serves the others', async () => {
  const admin = wsClient(suite.gateway.wsUrl, bearer(uniqueId('ops'), ['admin']));
  const everyone = subscribe(admin.client, QuotaChangedDocument, {});
  const leaving = wsClient(suite.gateway.wsUrl, bearer(uniqueId('leaving')));
  subscribe(leaving.client, QuotaChangedDocument, {});
  subscribe(leaving.client, 'subscription { quotaChanged { eventId kind } }', {});
  await waitForSubscriptions(suite.gateway, 3);
  await leaving.dispose();
  await waitForSubscriptions(suite.gateway, 1);
  const user = uniqueId('after');
  await suite.peer.publish('quota.updated', { userId: user }, { messageId: `after-${user}` });
  expect((await everyone.next()).data?.quotaChanged).toMatchObject({ eventId: `after-${user}`, userId: user });
});

it('complete and a new subscribe with the same id in one TCP write: the new operation is served, the completed one sends nothing more', async () => {
  const user = uniqueId('reuse');
  // Other tests' clients may still hold subscriptions: count from here.
  const counts = suite.gateway.app.stats().subscriptions;
  const quota = counts.quotaChanged ?? 0;
  const device = counts.deviceStatusChanged ?? 0;
  // Answers pings: this suite's keep-alive (300 ms) drops a silent peer.
  const raw = await connectRaw(suite.gateway.wsUrl, undefined, { answerPings: true });
  try {
    raw.json({ type: 'connection_init', payload: bearer(user) });
    expect(await raw.message()).toEqual({ type: 'connection_ack' });
    const query = 'subscription { quotaChanged { eventId } }';
    // Subscribe, then at once (before its setup finished) complete it and subscribe again with
    // the same id, all three frames in one write.
    raw.jsonBatch([
      { id: 'x', type: 'subscribe', payload: { query } },
      { id: 'x', type: 'complete' },
      { id: 'x', type: 'subscribe', payload: { query: 'subscription { quotaChanged { eventId kind } }' } },
    ]);
    await waitForSubscriptions(suite.gateway, quota + 1);
    await suite.peer.publish('quota.updated', { userId: user }, { messageId: `one-${user}` });
    // Exactly one answer, from the new operation (its selection has `kind`).
    expect(await raw.message()).toEqual({
      id: 'x',
      type: 'next',
      payload: { data: { quotaChanged: { eventId: `one-${user}`, kind: 'UPDATED' } } },
    });
    raw.json({ type: 'ping' });
    expect(await raw.message()).toEqual({ type: 'pong' });
    // And with a running operation: complete it and reuse its id for another field in one write
    // (another field, so the gateway's counts tell when the new one is live).
    raw.jsonBatch([
      { id: 'x', type: 'complete' },
      { id: 'x', type: 'subscribe', payload: { query: 'subscription { deviceStatusChanged { eventId status } }' } },
    ]);
    await waitForSubscriptions(suite.gateway, quota);
    await waitForSubscriptions(suite.gateway, device + 1, 'deviceStatusChanged');
    await suite.peer.publish('quota.updated', { userId: user }, { messageId: `two-${user}` });
    await suite.peer.publish('device.started', { userId: user, deviceId: `d-${user}` }, { messageId: `three-${user}` });
    expect(await raw.message()).toEqual({
      id: 'x',
      type: 'next',
      payload: { data: { deviceStatusChanged: { eventId: `three-${user}`, status: 'RUNNING' } } },
    });
    raw.json({ type: 'ping' });
    expect(await raw.message()).toEqual({ type: 'pong' });
  } finally {
    raw.destroy();
  }
  await waitForSubscriptions(suite.gateway, quota);
});

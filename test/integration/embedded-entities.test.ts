/**
 * The entity queries, mutations and read model on the embedded defaults (PGlite, in-process
 * pub/sub and bus): the same outbox path, the same owner resolution.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { MemoryEventBus } from '../../src/infra/memory/memory-bus';
import {
  AppInstallationsDocument,
  AppInstalledDocument,
  CreateDeviceDocument,
  DeviceDocument,
  DeviceStatusChangedDocument,
  StartDeviceDocument,
} from '../generated/graphql';
import { disposeClients, http, subscribe, token, wsClient } from '../helpers/clients';
import { startGateway, stopGateways, waitForSubscriptions, type TestGateway } from '../helpers/gateway';
import { uniqueId } from '../helpers/services';
import { waitFor } from '../helpers/wait';

let dataDir: string;
let gateway: TestGateway;

beforeAll(async () => {
  dataDir = await mkdtemp(path.join(os.tmpdir(), 'cpr-embedded-entities-'));
  gateway = await startGateway({ DATA_DIR: path.join(dataDir, 'db') });
  // PGlite boots and applies every migration through the WebAssembly schema engine: slow on a
  // loaded machine (seen past 30 s), which is start-up time, not the behaviour under test.
}, 120_000);

afterAll(async () => {
  await disposeClients();
  await stopGateways();
  await rm(dataDir, { recursive: true, force: true });
});

it('runs device mutations through the outbox and resolves owners from the read model', async () => {
  expect(gateway.config.database.kind).toBe('embedded');
  const user = uniqueId('pia');
  const client = wsClient(gateway.wsUrl, { authorization: `Bearer ${token(user)}` });
  const devices = subscribe(client.client, DeviceStatusChangedDocument, {});
  const apps = subscribe(client.client, AppInstalledDocument, {});
  await waitForSubscriptions(gateway, 1, 'deviceStatusChanged');
  await waitForSubscriptions(gateway, 1, 'appInstalled');

  const created = await http(gateway.httpUrl, CreateDeviceDocument, { token: token(user), variables: { input: { name: 'local' } } });
  const id = created.body.data!.createDevice.id;
  expect((await devices.next()).data?.deviceStatusChanged).toMatchObject({ type: 'device.created', deviceId: id, status: 'IDLE' });
  const started = await http(gateway.httpUrl, StartDeviceDocument, { token: token(user), variables: { id } });
  expect(started.body.data?.startDevice.status).toBe('RUNNING');
  expect((await devices.next()).data?.deviceStatusChanged).toMatchObject({
    type: 'device.started',
    status: 'RUNNING',
    previousStatus: 'IDLE',
  });

  const bus = gateway.app.bus as MemoryEventBus;
  bus.publishRaw('app.install.completed', Buffer.from(JSON.stringify({ deviceId: id, packageName: 'com.example.local' })), {
    messageId: `inst-${id}`,
  });
  expect((await apps.next()).data?.appInstalled).toMatchObject({ eventId: `inst-${id}`, userId: user, deviceId: id });
  const listed = await http(gateway.httpUrl, AppInstallationsDocument, { token: token(user), variables: { deviceId: id } });
  expect(listed.body.data?.appInstallations.map((i) => i.packageName)).toEqual(['com.example.local']);
  const read = await http(gateway.httpUrl, DeviceDocument, { token: token(user), variables: { id } });
  expect(read.body.data?.device).toMatchObject({ status: 'RUNNING', version: 2, installations: [{ packageName: 'com.example.local' }] });

  bus.publishRaw('app.install.completed', Buffer.from(JSON.stringify({ deviceId: 'nobody-knows', packageName: 'com.example.x' })), {
    messageId: 'ghost',
  });
  await waitForDeadLetter(bus, 'ghost');
  expect(bus.deadLetters.find((d) => d.message.messageId === 'ghost')?.reason).toBe('unknown owner');
});

async function waitForDeadLetter(bus: MemoryEventBus, messageId: string) {
  await waitFor(() => bus.deadLetters.some((d) => d.message.messageId === messageId), `the dead letter ${messageId}`);
}

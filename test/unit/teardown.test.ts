/** The helpers' teardown registry (test/helpers/teardown.ts): what the environment runs after a file. */
import { disposeLeftovers, openLeftovers, track } from '../helpers/teardown';

afterEach(async () => {
  // This file's own entries only; nothing else in a unit test registers.
  await disposeLeftovers(1_000);
});

it('closes what is still registered, newest first, each once', async () => {
  const closed: string[] = [];
  track('database', () => closed.push('database'));
  const gateway = track('gateway', async () => void closed.push('gateway'));
  track('client', () => closed.push('client'));
  expect(openLeftovers()).toEqual(['database', 'gateway', 'client']);
  await gateway.close();
  await gateway.close();
  expect(await disposeLeftovers()).toEqual([]);
  expect(closed).toEqual(['gateway', 'client', 'database']);
  expect(openLeftovers()).toEqual([]);
});

it('forgets what was untracked, and keeps closing after a failure, naming it', async () => {
  const closed: string[] = [];
  track('first', () => closed.push('first'));
  track('broken', () => Promise.reject(new Error('ECONNRESET')));
  track('gone', () => closed.push('gone')).untrack();
  const errors = await disposeLeftovers();
  expect(errors.map((e) => e.message)).toEqual(['teardown: broken: ECONNRESET']);
  expect(closed).toEqual(['first']);
});

it('bounds a close that never settles and goes on with the rest', async () => {
  const closed: string[] = [];
  track('first', () => closed.push('first'));
  track('stuck peer', () => new Promise(() => undefined));
  const errors = await disposeLeftovers(50);
  expect(errors.map((e) => e.message)).toEqual(['teardown: stuck peer: did not close within 50 ms']);
  expect(closed).toEqual(['first']);
});

/** docs/event-catalogue.md is generated from the routing table: stale means the code changed without it. */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { renderEventCatalogue } from '../../src/cli/emit-catalogue';
import { ALL_ROUTING_KEYS } from '../../src/contracts/routing';

it('docs/event-catalogue.md is what the routing table renders (run `npm run docs:catalogue` when this fails)', async () => {
  const committed = await readFile(path.resolve(__dirname, '../../docs/event-catalogue.md'), 'utf8');
  expect(committed).toBe(renderEventCatalogue());
});

it('lists every routing key the queue binds, once', () => {
  const page = renderEventCatalogue().split('## By subscription')[0] as string;
  const listed = [...page.matchAll(/^\| `([^`]+)` \|/gm)].map((m) => m[1]);
  expect([...listed].sort()).toEqual([...ALL_ROUTING_KEYS].sort());
  expect(new Set(listed).size).toBe(listed.length);
});

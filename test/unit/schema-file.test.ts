import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { createSchema, printSchemaSdl } from '../../src/schema';

it('schema/schema.graphql is what the code builds (run `npm run schema` when this fails)', async () => {
  const committed = await readFile(path.resolve(__dirname, '../../schema/schema.graphql'), 'utf8');
  expect(printSchemaSdl(await createSchema())).toBe(committed);
});

it('exposes the contract\'s subscription signature', async () => {
  const sdl = printSchemaSdl(await createSchema());
  expect(sdl).toContain('quotaChanged(userId: ID): QuotaEvent!');
});

/** `npm run schema`: writes schema/schema.graphql from the code (or checks it with --check). */
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { createSchema, printSchemaSdl } from '../schema';

export const SCHEMA_FILE = path.resolve(__dirname, '../../schema/schema.graphql');

async function main(): Promise<void> {
  const sdl = printSchemaSdl(await createSchema());
  if (process.argv.includes('--check')) {
    const committed = await readFile(SCHEMA_FILE, 'utf8').catch(() => '');
    if (committed !== sdl) {
      process.stderr.write('schema/schema.graphql is stale: run `npm run schema`\n');
      process.exit(1);
    }
    return;
  }
  await writeFile(SCHEMA_FILE, sdl);
  process.stdout.write(`wrote ${path.relative(process.cwd(), SCHEMA_FILE)}\n`);
}

void main();

/** A staleness check of test/generated (two codegen CLI processes, ~10 s): no service, but too slow for the unit loop. */
import { execFile } from 'node:child_process';
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const root = path.resolve(__dirname, '../..');
const cli = path.join(root, 'node_modules/.bin/graphql-codegen');
const GENERATED = 'test/generated/graphql.ts';

// The codegen CLI is ESM inside; run it as a developer does, in its own process. It exits 0 and
// writes nothing to stderr when up to date (its progress output depends on the terminal).
const check = (config: string, cwd: string) => run(cli, ['--config', config, '--check'], { cwd });

it('test/generated is what codegen.yml generates from the committed schema (run `npm run codegen`)', async () => {
  await expect(check('codegen.yml', root)).resolves.toMatchObject({ stderr: '' });
}, 60_000);

it('the staleness check fails when the generated file differs', async () => {
  // Same config against a copy, so the committed file is never touched.
  const dir = await mkdtemp(path.join(os.tmpdir(), 'cpr-codegen-'));
  try {
    const yaml = (await readFile(path.join(root, 'codegen.yml'), 'utf8'))
      .replace('schema: schema/schema.graphql', `schema: ${path.join(root, 'schema/schema.graphql')}`)
      .replace('documents: test/operations/**/*.graphql', `documents: ${path.join(root, 'test/operations')}/**/*.graphql`)
      .replace(`${GENERATED}:`, `${path.join(dir, 'graphql.ts')}:`);
    await writeFile(path.join(dir, 'codegen.yml'), yaml);
    await copyFile(path.join(root, GENERATED), path.join(dir, 'graphql.ts'));
    // Plugins resolve from the repository, so run from there with the copied config.
    const config = path.join(dir, 'codegen.yml');
    await expect(check(config, root)).resolves.toMatchObject({ stderr: '' });
    await writeFile(path.join(dir, 'graphql.ts'), `${await readFile(path.join(dir, 'graphql.ts'), 'utf8')}\n// edited\n`);
    await expect(check(config, root)).rejects.toMatchObject({ code: 1 });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}, 60_000);

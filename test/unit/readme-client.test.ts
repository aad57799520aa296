/** The manual's resuming client is the code the tests run (test/helpers/resumable-client.ts). */
import { readFileSync } from 'node:fs';
import path from 'node:path';

it('docs/resuming.md shows withResume exactly as test/helpers/resumable-client.ts has it', () => {
  const root = path.resolve(__dirname, '../..');
  const helper = readFileSync(path.join(root, 'test/helpers/resumable-client.ts'), 'utf8');
  const manual = readFileSync(path.join(root, 'docs/resuming.md'), 'utf8');
  const code = /\/\/ README:withResume:start\n([\s\S]*?)\/\/ README:withResume:end/.exec(helper)?.[1];
  expect(code).toMatch(/^import type \{ Client, Sink \} from 'graphql-ws';\n[\s\S]*export function withResume\(/);
  expect(manual).toContain('```ts\n' + code + '```');
});

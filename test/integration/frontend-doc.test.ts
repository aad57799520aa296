/**
 * docs/frontend.md's snippet works as pasted: its tsx block, type-checked as a file of a Vite +
 * React app (the example's compiler options) against the built packages' declarations. tsc in a
 * process of its own (~5 s): no service, but too slow for the unit loop.
 */
import { execFile } from 'node:child_process';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const root = path.resolve(__dirname, '../..');
const dir = path.join(root, '.tmp', `frontend-doc-${process.pid}`);

afterAll(() => rm(dir, { recursive: true, force: true }));

it('the provider-and-hook snippet of docs/frontend.md type-checks against the packages', async () => {
  const doc = await readFile(path.join(root, 'docs/frontend.md'), 'utf8');
  const blocks = [...doc.matchAll(/```tsx\n([\s\S]*?)```/g)].map((m) => m[1]!);
  expect(blocks).toHaveLength(1);
  expect(blocks[0]).toContain('createRealtimeClient');
  await mkdir(dir, { recursive: true });
  await writeFile(path.join(dir, 'snippet.tsx'), blocks[0]!);
  const example = JSON.parse(await readFile(path.join(root, 'examples/dashboard/tsconfig.json'), 'utf8')) as { compilerOptions: object };
  await writeFile(path.join(dir, 'tsconfig.json'), JSON.stringify({ compilerOptions: example.compilerOptions, files: ['snippet.tsx'] }));
  const tsc = path.join(root, 'node_modules/.bin/tsc');
  await expect(run(tsc, ['-p', dir], { cwd: root })).resolves.toMatchObject({ stdout: '', stderr: '' });
  // And the check can fail: a wrong hook option does not compile.
  await writeFile(path.join(dir, 'snippet.tsx'), blocks[0]!.replace('useRealtimeDevice()', 'useRealtimeDevice({ device: 1 })'));
  await expect(run(tsc, ['-p', dir], { cwd: root })).rejects.toMatchObject({ stdout: expect.stringContaining('error TS') as unknown });
}, 60_000);

/**
 * Runs the project's command-line tools as a developer does: a separate Node process with its own
 * environment, exit code, stdout and stderr. The TypeScript entry point is bundled with esbuild
 * into .tmp/ first (npm test does not run `npm run build`), dependencies left to node_modules.
 */
import { execFile } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { build } from 'esbuild';

const root = path.resolve(__dirname, '../..');
const outDir = path.join(root, '.tmp/cli-test');
const built = new Map<string, Promise<string>>();

export interface CliResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Bundles a TypeScript entry point (dependencies left to node_modules) once per test process. */
export function bundleEntry(entry: string, name: string): Promise<string> {
  let pending = built.get(entry);
  if (!pending) {
    pending = (async () => {
      await mkdir(outDir, { recursive: true });
      const outfile = path.join(outDir, `${name}-${process.pid}.js`);
      await build({
        entryPoints: [entry],
        outfile,
        bundle: true,
        platform: 'node',
        format: 'cjs',
        target: 'node20',
        packages: 'external',
        logLevel: 'error',
      });
      return outfile;
    })();
    built.set(entry, pending);
  }
  return pending;
}

const bundle = (name: string) => bundleEntry(path.join(root, 'src/cli', `${name}.ts`), name);

/** Runs `src/cli/<name>.ts` with exactly `env` (plus PATH) and `args`; never throws on exit codes. */
export async function runCli(name: string, args: string[], env: Record<string, string>, timeoutMs = 20_000): Promise<CliResult> {
  const file = await bundle(name);
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [file, ...args],
      { cwd: root, env: { PATH: process.env.PATH ?? '', ...env }, timeout: timeoutMs },
      (error, stdout, stderr) => {
        if (error && typeof error.code !== 'number') {
          const failure: Error = error; // an Error, though @types/node's ExecFileException omits from it
          return reject(failure);
        }
        resolve({ code: error ? (error.code as number) : 0, stdout, stderr });
      },
    );
  });
}

/**
 * `npm run build:graphiql`: bundles the GraphiQL page (./main.tsx: GraphiQL 5, React 19, Monaco
 * and its workers, fonts as files) with esbuild into dist/graphiql/, from npm packages only.
 * Skips the work when the sources and the lockfile are unchanged since the last build.
 * Fails when the output names an http(s) address a browser could load: nothing leaves the origin.
 */
import { createHash } from 'node:crypto';
import { copyFile, mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../..');
const out = path.join(root, 'dist/graphiql');
const assets = path.join(out, 'assets');
const force = process.argv.includes('--force');

async function fingerprint() {
  const hash = createHash('sha256');
  for (const name of (await readdir(here)).sort()) hash.update(name).update(await readFile(path.join(here, name)));
  hash.update(await readFile(path.join(root, 'package-lock.json')));
  return hash.digest('hex');
}

const stampFile = path.join(out, '.stamp');
const stamp = await fingerprint();
if (!force && (await readFile(stampFile, 'utf8').catch(() => '')) === stamp) {
  process.stderr.write('graphiql: dist/graphiql is up to date\n');
  process.exit(0);
}

const began = Date.now();
await rm(out, { recursive: true, force: true });
await mkdir(assets, { recursive: true });
const resolveFrom = (specifier) => fileURLToPath(import.meta.resolve(specifier));
await build({
  absWorkingDir: root,
  entryPoints: {
    graphiql: path.join(here, 'main.tsx'),
    'editor.worker': resolveFrom('monaco-editor/esm/vs/editor/editor.worker.js'),
    'json.worker': resolveFrom('monaco-editor/esm/vs/language/json/json.worker.js'),
    'graphql.worker': resolveFrom('monaco-graphql/esm/graphql.worker.js'),
  },
  outdir: assets,
  bundle: true,
  format: 'iife',
  platform: 'browser',
  target: ['chrome110', 'firefox110', 'safari16'],
  minify: true,
  sourcemap: false,
  legalComments: 'none',
  jsx: 'automatic',
  loader: { '.ttf': 'file', '.woff': 'file', '.woff2': 'file', '.svg': 'dataurl', '.png': 'dataurl' },
  define: { 'process.env.NODE_ENV': '"production"' },
  logLevel: 'warning',
});
await copyFile(path.join(here, 'index.html'), path.join(out, 'index.html'));

// Every address in the output, to check nothing would be loaded from another host. Addresses in
// licence banners, error messages and docs links are text, not requests; the browser test checks
// the requests themselves. Fail only on the shapes that load: url(...), src/href, import, Worker.
const loads = /(?:url\(\s*["']?|(?:src|href)\s*=\s*["']|import\(\s*["']|new Worker\(\s*["'])https?:\/\//g;
for (const name of await readdir(assets)) {
  if (!/\.(js|css|html)$/.test(name)) continue;
  const text = await readFile(path.join(assets, name), 'utf8');
  const found = text.match(loads);
  if (found) throw new Error(`graphiql: ${name} loads from another host: ${found.slice(0, 3).join(', ')}`);
}

await writeFile(stampFile, stamp);
const files = await readdir(assets);
process.stderr.write(`graphiql: built ${files.length} files into dist/graphiql in ${Date.now() - began} ms\n`);

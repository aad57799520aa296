/**
 * `npm run docs:config`: rewrites the configuration tables in README.md (compact) and
 * docs/configuration.md (full, by group) from the declarations in src/config.ts, between the
 * `<!-- config-table:start -->` and `<!-- config-table:end -->` markers; `--check` only reports
 * stale tables (exit 1). test/unit/config-docs.test.ts runs the same check.
 */
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { CONFIG_GROUPS, OPTIONS, isDerivedDefault, type ConfigMode, type ConfigOption } from '../config';

/** Opens the generated region; everything up to `CONFIG_TABLE_END` is rewritten. */
export const CONFIG_TABLE_START = '<!-- config-table:start -->';
/** Closes the generated region. */
export const CONFIG_TABLE_END = '<!-- config-table:end -->';
/** The command that regenerates the tables, as failures name it. */
export const CONFIG_DOCS_COMMAND = 'npm run docs:config';

const ROOT = path.resolve(__dirname, '../..');

const GENERATED_NOTE = '<!-- generated from the declarations in src/config.ts by `npm run docs:config`: edit those, not this table -->';
const CONTRACT_NOTE = 'Variables in **bold** are named in the public contract: their names do not change.';

const MODES: Record<ConfigMode, string> = { embedded: 'embedded', services: 'real services', both: 'both' };

/** Every declared option parses to one of these (see `readOptions`). */
type Option = ConfigOption<string | number | boolean>;

type Named = [name: string, option: Option];

const options = (): Named[] => Object.entries(OPTIONS);

// A table cell: a pipe would end the cell, a newline the row.
const cell = (text: string) => text.replace(/\|/g, '\\|').replace(/\s*\n\s*/g, ' ');

const variable = ([name, option]: Named) => (option.contract ? `**\`${name}\`**` : `\`${name}\``);

function defaultText(option: Option): string {
  const fallback = option.default;
  if (fallback === undefined) return option.whenUnset ?? 'unset';
  if (isDerivedDefault(fallback)) return fallback.describe;
  return `\`${String(fallback)}\``;
}

function modeText([name, option]: Named): string {
  const label = option.requiredInProduction;
  if (!label) return MODES[option.mode];
  const which = label === name ? '' : ` (one of ${label})`;
  return `${MODES[option.mode]}; required in production${which}`;
}

// Without a type column, the compact table still says which values an enumeration takes.
const compactDoc = (option: Option) =>
  option.kind === 'enum' ? `${option.doc} ${option.type.charAt(0).toUpperCase()}${option.type.slice(1)}.` : option.doc;

const row = (cells: string[]) => `| ${cells.map(cell).join(' | ')} |`;

/** README.md's table: variable, default, description, in declaration order (the contract's first). */
export function renderCompactTable(): string {
  const lines = [
    GENERATED_NOTE,
    CONTRACT_NOTE,
    '',
    '| variable | default | description |',
    '|---|---|---|',
    ...options().map((entry) => row([variable(entry), defaultText(entry[1]), compactDoc(entry[1])])),
  ];
  return `\n${lines.join('\n')}\n`;
}

/** docs/configuration.md's tables: one per group, variable, type and range, default, mode, description. */
export function renderFullTable(): string {
  const lines = [GENERATED_NOTE, CONTRACT_NOTE];
  for (const group of CONFIG_GROUPS) {
    const members = options().filter(([, option]) => option.group === group);
    if (members.length === 0) continue;
    lines.push(
      '',
      `## ${group}`,
      '',
      '| variable | type and range | default | mode | description |',
      '|---|---|---|---|---|',
      ...members.map((entry) => row([variable(entry), entry[1].type, defaultText(entry[1]), modeText(entry), entry[1].doc])),
    );
  }
  return `\n${lines.join('\n')}\n`;
}

/** Each file with a generated configuration table, relative to the repository root. */
export const CONFIG_DOCS: readonly { readonly file: string; readonly render: () => string }[] = [
  { file: 'README.md', render: renderCompactTable },
  { file: 'docs/configuration.md', render: renderFullTable },
];

/** The text between the markers, or an error message naming the file when they are missing. */
export function regionOf(text: string, file: string): { region: string } | { error: string } {
  const start = text.indexOf(CONFIG_TABLE_START);
  const end = text.indexOf(CONFIG_TABLE_END);
  if (start < 0 || end < start || text.indexOf(CONFIG_TABLE_START, start + 1) >= 0) {
    return { error: `${file} needs exactly one ${CONFIG_TABLE_START} … ${CONFIG_TABLE_END} region for the configuration table` };
  }
  return { region: text.slice(start + CONFIG_TABLE_START.length, end) };
}

/** `text` with its region replaced by `generated`; throws when the markers are missing. */
export function replaceRegion(text: string, generated: string, file: string): string {
  const found = regionOf(text, file);
  if ('error' in found) throw new Error(found.error);
  const start = text.indexOf(CONFIG_TABLE_START) + CONFIG_TABLE_START.length;
  return text.slice(0, start) + generated + text.slice(start + found.region.length);
}

/** Why `text`'s table is not what the declarations give (naming the command that fixes it), or null. */
export function staleness(text: string, generated: string, file: string): string | null {
  const found = regionOf(text, file);
  if ('error' in found) return found.error;
  if (found.region === generated) return null;
  return `${file}: the configuration table differs from the declarations in src/config.ts (stale, or edited by hand): run \`${CONFIG_DOCS_COMMAND}\``;
}

async function main(): Promise<void> {
  const check = process.argv.includes('--check');
  let failed = false;
  for (const { file, render } of CONFIG_DOCS) {
    const absolute = path.join(ROOT, file);
    const text = await readFile(absolute, 'utf8');
    const generated = render();
    if (check) {
      const problem = staleness(text, generated, file);
      if (problem) {
        process.stderr.write(`${problem}\n`);
        failed = true;
      }
      continue;
    }
    const next = replaceRegion(text, generated, file);
    if (next !== text) await writeFile(absolute, next);
    process.stdout.write(`${next === text ? 'unchanged' : 'wrote'} ${file}\n`);
  }
  if (failed) process.exit(1);
}

// Imported by the test for its renderers; runs only as the command.
if (require.main === module) {
  main().catch((error: unknown) => {
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  });
}

import { readFileSync } from 'node:fs';
import path from 'node:path';
import {
  CONFIG_DOCS,
  CONFIG_TABLE_END,
  CONFIG_TABLE_START,
  renderCompactTable,
  renderFullTable,
  replaceRegion,
  staleness,
} from '../../src/cli/emit-config-docs';
import { CONFIG_GROUPS, OPTIONS, type ConfigOption } from '../../src/config';

const ROOT = path.resolve(__dirname, '../..');
const entries = Object.entries(OPTIONS) as [string, ConfigOption][];

describe('generated configuration tables', () => {
  it.each(CONFIG_DOCS.map(({ file, render }) => [file, render] as const))(
    '%s has the table the declarations give (run `npm run docs:config` when this fails)',
    (file, render) => {
      const text = readFileSync(path.join(ROOT, file), 'utf8');
      expect(staleness(text, render(), file)).toBeNull();
    },
  );

  it('reports a stale or missing table, naming the file and the command that regenerates it', () => {
    const fresh = `# Doc\n\n${CONFIG_TABLE_START}${renderCompactTable()}${CONFIG_TABLE_END}\n\nafter\n`;
    expect(staleness(fresh, renderCompactTable(), 'README.md')).toBeNull();

    const edited = fresh.replace('| `4000` |', '| `8080` |');
    expect(edited).not.toBe(fresh);
    expect(staleness(edited, renderCompactTable(), 'README.md')).toBe(
      'README.md: the configuration table differs from the declarations in src/config.ts (stale, or edited by hand): run `npm run docs:config`',
    );
    expect(staleness('# no markers\n', renderCompactTable(), 'docs/configuration.md')).toMatch(
      /^docs\/configuration\.md needs exactly one <!-- config-table:start --> … <!-- config-table:end --> region/,
    );
  });

  it('rewrites only the region between the markers', () => {
    const before = `intro\n${CONFIG_TABLE_START}\nold table\n${CONFIG_TABLE_END}\noutro\n`;
    const after = replaceRegion(before, '\nNEW\n', 'x.md');
    expect(after).toBe(`intro\n${CONFIG_TABLE_START}\nNEW\n${CONFIG_TABLE_END}\noutro\n`);
    expect(replaceRegion(after, '\nNEW\n', 'x.md')).toBe(after);
    expect(() => replaceRegion('intro\n', '\nNEW\n', 'x.md')).toThrow(/x\.md needs exactly one/);
  });

  it('lists every option in both tables, each once, with its default', () => {
    const compact = renderCompactTable();
    const full = renderFullTable();
    for (const [name] of entries) {
      const cell = new RegExp(`^\\| (\\*\\*)?\`${name}\`(\\*\\*)? \\|`, 'gm');
      expect([name, compact.match(cell)?.length]).toEqual([name, 1]);
      expect([name, full.match(cell)?.length]).toEqual([name, 1]);
    }
    expect(compact).toContain('| **`PORT`** | `4000` | TCP port to listen on;');
    expect(full).toContain('| `GRAPHQL_INTROSPECTION` | boolean | `true` outside production, `false` in production | both |');
    expect(full).toContain(
      '| **`DATABASE_URL`** | URL (`postgres:`, `postgresql:`) | embedded PostgreSQL (PGlite) in `DATA_DIR` | real services; required in production |',
    );
    expect(full).toContain('| `WS_SOCKET_LEASE_MS` | duration (ms), ≥ 1000 | `60000` | real services |');
    expect(compact).toContain('| `LOG_FORMAT` | `auto` | ');
    expect(compact).toContain('One of `auto`, `json`, `pretty`. |');
  });

  it('groups the full table in the declared group order', () => {
    const headings = renderFullTable()
      .match(/^## .+$/gm)
      ?.map((line) => line.slice(3));
    expect(headings).toEqual(CONFIG_GROUPS.filter((group) => entries.some(([, option]) => option.group === group)));
  });
});

describe('option declarations', () => {
  it("start with the contract's variables, exactly and in its order, and only those are marked", () => {
    const contract = [
      'PORT',
      'HOST',
      'DATABASE_URL',
      'REDIS_URL',
      'AMQP_URL',
      'AMQP_EXCHANGE',
      'AMQP_QUEUE',
      'AMQP_PARTITIONS',
      'JWT_SECRET',
      'JWT_PUBLIC_KEY',
      'JWT_JWKS_URL',
      'JWT_ISSUER',
      'JWT_AUDIENCE',
      'LOG_LEVEL',
    ];
    expect(entries.slice(0, contract.length).map(([name]) => name)).toEqual(contract);
    expect(entries.filter(([, option]) => option.contract).map(([name]) => name)).toEqual(contract);
  });

  it.each(entries)('%s is named, grouped and described in one sentence', (name, option) => {
    expect(name).toMatch(/^[A-Z][A-Z0-9]*(_[A-Z0-9]+)*$/);
    expect(CONFIG_GROUPS).toContain(option.group);
    expect(['embedded', 'services', 'both']).toContain(option.mode);
    // One sentence: ends with a full stop, and no other sentence starts inside it.
    expect(option.doc).toMatch(/^\S.*\.$/);
    expect(option.doc).not.toMatch(/\.\s+[A-Z]/);
    expect(option.type.length).toBeGreaterThan(0);
  });

  it.each(entries.filter(([, option]) => typeof option.default !== 'object' && option.default !== undefined))(
    '%s: its literal default passes its own validation',
    (name, option) => {
      expect(option.parse(String(option.default), name)).toBe(option.default);
    },
  );
});

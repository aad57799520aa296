// ESLint 9 flat config: typescript-eslint's type-aware rules (the ones that catch real defects in
// an async gateway: floating and misused promises, awaiting non-thenables, unsafe `any` flows) and
// the import boundaries between the layers of src/ (docs: README "Layout"; STYLE.md).
// Formatting is Prettier's job (`npm run format:check`), so no stylistic rules here.
import js from '@eslint/js';
import boundaries from 'eslint-plugin-boundaries';
import globals from 'globals';
import reactHooks from 'eslint-plugin-react-hooks';
import tseslint from 'typescript-eslint';

/**
 * The layers of src/ and what each may import (besides packages and node: built-ins).
 * `generated` is the Prisma client tsc compiles with src/: a library, like node_modules.
 * `wiring` is the composition root: it may import anything, and nothing but wiring imports it.
 */
const LAYERS = [
  // contracts may use lib's generic types (a port exposing an EventQueue); lib depends on nothing.
  { type: 'contracts', pattern: 'src/contracts', allow: ['contracts', 'lib'] },
  { type: 'lib', pattern: 'src/lib', allow: ['lib'] },
  { type: 'auth', pattern: 'src/auth', allow: ['auth', 'contracts', 'lib'] },
  { type: 'domains', pattern: 'src/domains', allow: ['domains', 'contracts', 'auth', 'lib', 'generated'] },
  { type: 'bridge', pattern: 'src/bridge', allow: ['bridge', 'contracts', 'lib'] },
  { type: 'graphql', pattern: 'src/graphql', allow: ['graphql', 'contracts', 'auth', 'lib'] },
  { type: 'transports', pattern: 'src/transports', allow: ['transports', 'graphql', 'contracts', 'auth', 'lib'] },
  { type: 'infra', pattern: 'src/infra', allow: ['infra', 'contracts', 'lib', 'generated'] },
  { type: 'generated', pattern: 'src/generated', allow: ['generated'] },
  // The GraphiQL page runs in the browser, bundled by esbuild: it shares only the wire contract.
  { type: 'graphiql', pattern: 'src/graphiql', allow: ['graphiql', 'contracts'] },
  // Last, so it takes what no layer above claims: app.ts, main.ts, schema.ts, config.ts,
  // logger.ts, parts/ (what buildApp assembles), cli/. A new top-level folder of src/ therefore
  // needs its own entry above unless it is wiring.
  { type: 'wiring', pattern: 'src', allow: ['*'] },
];

export default tseslint.config(
  {
    ignores: [
      'node_modules/',
      'dist/',
      'coverage/',
      '.tmp/',
      '.data/',
      'test-artifacts/',
      'src/generated/',
      'test/generated/',
      'packages/client/src/generated/',
      'examples/*/dist/',
      'packages/*/dist/',
      'prisma/migrations/',
    ],
  },
  js.configs.recommended,
  {
    files: ['**/*.ts', '**/*.tsx'],
    extends: [tseslint.configs.recommendedTypeChecked],
    languageOptions: {
      parserOptions: {
        // Finds the nearest tsconfig.json per file: src/, test/, src/graphiql/ (and packages/*).
        projectService: true,
        tsconfigRootDir: import.meta.dirname,
      },
    },
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    rules: {
      // The defects that matter in an event gateway: a promise nobody awaits loses its error.
      '@typescript-eslint/no-floating-promises': ['error', { ignoreVoid: true }],
      // ws, amqplib, ioredis and express ignore what their callbacks return: an async callback
      // there rejects into nowhere (and crashes the process on an unhandled rejection).
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/await-thenable': 'error',
      // Off: the in-memory adapters and test doubles implement Promise-returning ports with async
      // methods that need no await; `async` there is what turns a throw into a rejection.
      '@typescript-eslint/require-await': 'off',
      '@typescript-eslint/return-await': ['error', 'in-try-catch'],
      '@typescript-eslint/only-throw-error': 'error',
      '@typescript-eslint/prefer-promise-reject-errors': 'error',
      '@typescript-eslint/switch-exhaustiveness-check': ['error', { considerDefaultExhaustiveForUnions: true }],
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports' }],
      '@typescript-eslint/no-import-type-side-effects': 'error',
      // `_`-prefixed names are deliberate placeholders (unused parameters, destructured rests).
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none', ignoreRestSiblings: true },
      ],
      // Template literals with numbers are everywhere in log and error messages and are fine.
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true, allowBoolean: true, allowNullish: true }],
      // A `let` that a closure reads before its one assignment (an unsubscribe callback that may run
      // while SUBSCRIBE is in flight) must stay `let`: as a `const` the closure would hit its TDZ.
      'prefer-const': ['error', { ignoreReadBeforeAssign: true }],
    },
  },
  {
    files: ['src/**/*.ts', 'src/**/*.tsx'],
    plugins: { boundaries },
    settings: {
      'import/resolver': { node: { extensions: ['.ts', '.tsx', '.js', '.mjs', '.json'] } },
      'boundaries/include': ['src/**/*'],
      // A pattern is a folder from the project root and covers everything below it; the first
      // matching layer wins.
      'boundaries/elements': LAYERS.map(({ type, pattern }) => ({ type, pattern, partialMatch: false })),
    },
    rules: {
      'boundaries/dependencies': [
        'error',
        {
          default: 'disallow',
          policies: LAYERS.map(({ type, allow }) => ({
            from: { element: { type } },
            allow: { to: { element: { types: { anyOf: allow.includes('*') ? LAYERS.map((layer) => layer.type) : allow } } } },
          })),
        },
      ],
    },
  },
  {
    files: ['test/**/*.ts'],
    languageOptions: { globals: { ...globals.node, ...globals.jest } },
  },
  {
    files: ['**/*.mjs', '**/*.js', '**/*.cjs'],
    extends: [tseslint.configs.disableTypeChecked],
    languageOptions: { globals: globals.node },
  },
  {
    files: ['src/graphiql/**/*.ts', 'src/graphiql/**/*.tsx'],
    extends: [reactHooks.configs.flat['recommended-latest']],
    languageOptions: { globals: globals.browser },
  },
);

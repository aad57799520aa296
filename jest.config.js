/**
 * Three projects, selected by the npm scripts (`--selectProjects`):
 * - unit: no service at all (a setup file refuses connections to PostgreSQL, Redis and RabbitMQ),
 *   no `--experimental-vm-modules`, no GraphiQL build: the quick loop, `npm run test:unit`;
 * - integration: the real services, each file isolated (own database, exchange, queues, prefix);
 * - disruptive: disturbs what it connects to, so `npm run test:disruptive` runs it alone, in band.
 * ts-jest transpiles each file on its own (`isolatedModules` in test/tsconfig.json): type errors
 * are `tsc -p test`'s job, which `npm test` and `npm run lint` run.
 */
const base = {
  rootDir: __dirname,
  testEnvironment: '<rootDir>/test/jest/environment.js',
  testMatch: ['**/*.test.ts'],
  testPathIgnorePatterns: ['/node_modules/'],
  transform: {
    '^.+\\.ts$': [
      'ts-jest',
      {
        tsconfig: '<rootDir>/test/tsconfig.json',
        // 151002: ts-jest's hint to use isolatedModules through tsconfig, which we do.
        diagnostics: { ignoreCodes: [151002] },
      },
    ],
  },
};

/** @type {import('jest').Config} */
module.exports = {
  // A global option: jest ignores it inside a project.
  testTimeout: 30_000,
  reporters: ['default', '<rootDir>/test/jest/exit-guard-reporter.js'],
  projects: [
    {
      ...base,
      displayName: 'unit',
      roots: ['<rootDir>/test/unit'],
      // After the framework (it restores `net` in an afterAll): see the file.
      setupFilesAfterEnv: ['<rootDir>/test/jest/no-services.ts'],
    },
    { ...base, displayName: 'integration', roots: ['<rootDir>/test/integration'] },
    { ...base, displayName: 'disruptive', roots: ['<rootDir>/test/disruptive'] },
  ],
};

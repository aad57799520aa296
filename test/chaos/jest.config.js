/**
 * `npm run chaos` only (not a project of the root jest.config.js: `npm test` never runs it). One
 * suite, in band, with a bound well under its ten minutes.
 */
const path = require('node:path');

/** @type {import('jest').Config} */
module.exports = {
  rootDir: path.resolve(__dirname, '../..'),
  testEnvironment: 'node',
  roots: ['<rootDir>/test/chaos'],
  testMatch: ['**/*.suite.ts'],
  testPathIgnorePatterns: ['/node_modules/'],
  testTimeout: 600_000,
  transform: {
    '^.+\\.ts$': ['ts-jest', { tsconfig: '<rootDir>/test/tsconfig.json', diagnostics: { ignoreCodes: [151002] } }],
  },
};

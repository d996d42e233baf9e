/**
 * Two projects over one run: `sqlite` is the whole suite on the embedded SQLite ledger; `postgres` runs the suites
 * that open a ledger again on the PostgreSQL ledger (TEST_LEDGER=postgres, see test/helpers/ledger.ts), plus the
 * PostgreSQL-only suites. Pure unit tests and suites that never open a ledger run once, in `sqlite`.
 * One global setup (one Redis, one PostgreSQL server) serves both projects.
 */

/** Suites that open a ledger: run on both backends. */
const LEDGER_SUITES = [
  'test/integration/admin.test.ts',
  'test/integration/change-signal.test.ts',
  'test/integration/cli.test.ts',
  'test/integration/events-api.test.ts',
  'test/integration/fulfilment-api.test.ts',
  'test/integration/fuzz.test.ts',
  'test/integration/ledger.test.ts',
  'test/integration/metrics.test.ts',
  'test/integration/reconciler.test.ts',
  'test/integration/status-worker.test.ts',
  'test/faults/**/*.test.ts',
  'test/e2e/**/*.test.ts',
];

/** Suites about PostgreSQL itself: run once, in `postgres`, whatever TEST_LEDGER says. */
const POSTGRES_ONLY_SUITES = ['test/integration/local-postgres.test.ts', 'test/**/pg-*.test.ts'];

const project = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  transform: { '^.+\\.ts$': ['@swc/jest'] },
};

/** @type {import('jest').Config} */
module.exports = {
  projects: [
    {
      ...project,
      displayName: 'sqlite',
      testMatch: ['<rootDir>/test/**/*.test.ts'],
      testPathIgnorePatterns: [
        '/node_modules/',
        '/test/integration/local-postgres\\.test\\.ts$',
        '/test/.*/pg-[^/]*\\.test\\.ts$',
      ],
    },
    {
      ...project,
      displayName: 'postgres',
      testMatch: [...LEDGER_SUITES, ...POSTGRES_ONLY_SUITES].map((glob) => `<rootDir>/${glob}`),
      setupFiles: ['<rootDir>/test/helpers/use-postgres.ts'],
    },
  ],
  globalSetup: '<rootDir>/test/helpers/global-setup.ts',
  globalTeardown: '<rootDir>/test/helpers/global-teardown.ts',
  testTimeout: 20000,
};

import path from 'node:path';
import { openLedger, type Ledger, type LedgerLocation, type OpenLedgerOptions } from '../../src/ledger';
import { createTestDatabase, dropTestDatabase } from './postgres';

export type TestBackend = 'sqlite' | 'postgres';

/**
 * The ledger backend this run tests: jest.config.js runs the ledger-touching suites once per backend (projects
 * `sqlite` and `postgres`), setting TEST_LEDGER for the second.
 */
export const TEST_BACKEND: TestBackend = process.env.TEST_LEDGER === 'postgres' ? 'postgres' : 'sqlite';

/** `describe` for tests that only make sense on one backend (a SQLite file lock, a PostgreSQL outage). */
export const describeOn = (backend: TestBackend) => (backend === TEST_BACKEND ? describe : describe.skip);

export interface TestLedgerLocation {
  location: LedgerLocation;
  /** The environment a process needs to open this ledger (LEDGER_PATH or LEDGER_URL). */
  env: Record<string, string>;
  /** Removes a PostgreSQL database (a SQLite file goes with its test directory). */
  drop(): Promise<void>;
}

/** A fresh, empty ledger location: a SQLite file in `dir`, or a new database on the shared PostgreSQL server. */
export async function newLedgerLocation(
  dir: string,
  backend: TestBackend = TEST_BACKEND,
): Promise<TestLedgerLocation> {
  if (backend === 'sqlite') {
    const file = path.join(dir, 'ledger.db');
    return { location: { kind: 'sqlite', path: file }, env: { LEDGER_PATH: file }, drop: async () => {} };
  }
  const url = await createTestDatabase();
  return {
    location: { kind: 'postgres', url, poolSize: 5 },
    env: { LEDGER_URL: url },
    drop: () => dropTestDatabase(url),
  };
}

/** A fresh ledger opened on the backend under test. */
export async function openTestLedger(
  dir: string,
  options: OpenLedgerOptions = {},
): Promise<{ ledger: Ledger } & TestLedgerLocation> {
  const where = await newLedgerLocation(dir);
  const ledger = await openLedger(where.location, options);
  return { ledger, ...where };
}

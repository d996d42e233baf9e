import path from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import {
  openLedger,
  openSqliteLedger,
  type Ledger,
  type LedgerLocation,
  type OpenLedgerOptions,
} from '../../src/ledger';
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

/**
 * A second handle on an existing ledger that gives up quickly when another session holds the ledger's write lock
 * (see lockLedgerWrites): SQLite with a short busy timeout, PostgreSQL with a short statement timeout (a timeout
 * that also bounds every other statement, so it cannot be as short as SQLite's busy wait).
 */
export async function openImpatientLedger(location: LedgerLocation): Promise<Ledger> {
  if (location.kind === 'sqlite') return openSqliteLedger({ path: location.path, busyTimeoutMs: 10 });
  return openLedger({ ...location, statementTimeoutMs: 300 });
}

/**
 * Takes the ledger's write lock from a session of the test's own until the returned function releases it:
 * SQLite's database write lock (BEGIN EXCLUSIVE), or on PostgreSQL a lock on the events table that lets readers
 * through and stops every writer (LOCK TABLE events IN EXCLUSIVE MODE). Every ledger write records an event
 * row, so either way no event can be applied or recorded while it is held.
 */
export async function lockLedgerWrites(location: LedgerLocation): Promise<() => Promise<void>> {
  if (location.kind === 'sqlite') {
    const sqlite = new Database(location.path);
    sqlite.exec('BEGIN EXCLUSIVE');
    return async () => {
      sqlite.exec('ROLLBACK');
      sqlite.close();
    };
  }
  const client = new pg.Client({ connectionString: location.url });
  client.on('error', () => {});
  await client.connect();
  await client.query('BEGIN');
  await client.query('LOCK TABLE events IN EXCLUSIVE MODE');
  return async () => {
    await client.query('ROLLBACK');
    await client.end();
  };
}

/**
 * Runs one SQL statement on the ledger's database behind the ledger's back (to corrupt a row on purpose, say),
 * with `?` placeholders on both backends.
 */
export async function runLedgerSql(
  location: LedgerLocation,
  statement: string,
  params: unknown[] = [],
): Promise<void> {
  if (location.kind === 'sqlite') {
    const sqlite = new Database(location.path);
    try {
      sqlite.prepare(statement).run(...params);
    } finally {
      sqlite.close();
    }
    return;
  }
  let n = 0;
  const client = new pg.Client({ connectionString: location.url });
  client.on('error', () => {});
  await client.connect();
  try {
    await client.query(
      statement.replace(/\?/g, () => `$${++n}`),
      params,
    );
  } finally {
    await client.end();
  }
}

import type { CheckPolicy } from './check-schedule';
import type { Ledger } from './ledger';
import type * as PgLedgerModule from './pg-ledger';
import type { OpenPgLedgerOptions } from './pg-ledger';
import { openSqliteLedger } from './sqlite-ledger';

/** Where the ledger lives: a PostgreSQL server (LEDGER_URL) or an embedded SQLite file (LEDGER_PATH). */
export type LedgerLocation =
  | { kind: 'sqlite'; path: string }
  | {
      kind: 'postgres';
      url: string;
      poolSize?: number;
      statementTimeoutMs?: number;
      tls?: 'off' | 'require' | 'verify';
      tlsCaFile?: string;
    };

export interface OpenLedgerOptions {
  checkPolicy?: CheckPolicy;
  now?: () => number;
  onConnectionError?: (error: Error) => void;
  /** SQLite only: checkpoint the WAL from a thread of its own (see sqlite-checkpointer.ts). */
  backgroundCheckpointMs?: number;
  /** SQLite only: run `counts()` on a thread of its own (see sqlite-counts-reader.ts). */
  countsOffThread?: boolean;
}

/**
 * node-postgres and drizzle's pg-core add ~20 MB to a process: loaded only when a PostgreSQL ledger is opened,
 * so processes on SQLite do not carry them.
 */
export async function openPgLedger(options: OpenPgLedgerOptions): Promise<Ledger> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { openPgLedger: open } = require('./pg-ledger') as typeof PgLedgerModule;
  return open(options);
}

export async function openLedger(location: LedgerLocation, options: OpenLedgerOptions = {}): Promise<Ledger> {
  if (location.kind === 'sqlite')
    return openSqliteLedger({
      path: location.path,
      checkPolicy: options.checkPolicy,
      now: options.now,
      backgroundCheckpointMs: options.backgroundCheckpointMs,
      countsOffThread: options.countsOffThread,
    });
  const { kind: _kind, ...settings } = location;
  const { backgroundCheckpointMs: _sqliteOnly, countsOffThread: _alsoSqliteOnly, ...pgOptions } = options;
  return openPgLedger({ ...settings, ...pgOptions });
}

/** For logs: the location without credentials. */
export function describeLedger(location: LedgerLocation): string {
  if (location.kind === 'sqlite') return `sqlite ${location.path}`;
  const url = new URL(location.url);
  return `postgres ${url.hostname}:${url.port || 5432}${url.pathname}`;
}

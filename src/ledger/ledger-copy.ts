import fs from 'node:fs';
import Database from 'better-sqlite3';
import { asc, getTableColumns, gt, type Column } from 'drizzle-orm';
import { drizzle as drizzleSqlite, type BetterSQLite3Database } from 'drizzle-orm/better-sqlite3';
import { drizzle as drizzlePg, type NodePgDatabase } from 'drizzle-orm/node-postgres';
import type { PgTable } from 'drizzle-orm/pg-core';
import type { SQLiteTable } from 'drizzle-orm/sqlite-core';
import { Pool, type PoolClient, type PoolConfig } from 'pg';
import { describeLedger, type LedgerLocation } from './open';
import { openPgLedger } from './pg-ledger';
import * as pgSchema from './pg-schema';
import * as sqliteSchema from './schema';
import { openSqliteLedger } from './sqlite-ledger';

/**
 * `paystate ledger copy`: every row of one ledger into an empty ledger on the other backend, ids and sequence
 * numbers kept, so change-feed cursors (`next`), event cursors and operator action ids stay valid across the move.
 *
 * Rows are read through the source's drizzle schema and written through the target's (the two schemas share
 * export names, property names and columns; drizzle converts SQLite's 0/1 flags and PostgreSQL's bigints), in
 * key order and in batches, inside one transaction on the target: a copy that fails leaves the target as it was.
 * The source is read inside one read transaction, so the rows and the counts compared afterwards are one
 * snapshot even if a writer was forgotten. After the commit the target's row counts and highest sequence numbers
 * are read again and compared with the source's.
 */

/** The ledger's tables in an order that satisfies every foreign key (payments before what points at them). */
export const LEDGER_TABLES = [
  'operator_actions',
  'payments',
  'events',
  'state_changes',
  'refunds',
  'drifts',
] as const;
export type LedgerTable = (typeof LEDGER_TABLES)[number];

type Row = Record<string, unknown>;

interface TableSpec {
  name: LedgerTable;
  /** Primary key: property and column name are the same for every table. */
  key: string;
  /** Whether the key is a sequence (SQLite autoincrement, PostgreSQL identity) to carry past the copied rows. */
  sequence: boolean;
  sqlite: SQLiteTable;
  pg: PgTable;
}

const TABLES: readonly TableSpec[] = [
  {
    name: 'operator_actions',
    key: 'id',
    sequence: true,
    sqlite: sqliteSchema.operatorActions,
    pg: pgSchema.operatorActions,
  },
  { name: 'payments', key: 'id', sequence: false, sqlite: sqliteSchema.payments, pg: pgSchema.payments },
  { name: 'events', key: 'seq', sequence: true, sqlite: sqliteSchema.events, pg: pgSchema.events },
  {
    name: 'state_changes',
    key: 'seq',
    sequence: true,
    sqlite: sqliteSchema.stateChanges,
    pg: pgSchema.stateChanges,
  },
  { name: 'refunds', key: 'id', sequence: false, sqlite: sqliteSchema.refunds, pg: pgSchema.refunds },
  { name: 'drifts', key: 'seq', sequence: true, sqlite: sqliteSchema.drifts, pg: pgSchema.drifts },
];

/** Rows read per batch. A raw event body is ~1 KB typically (at most WEBHOOK_MAX_BODY). */
export const DEFAULT_COPY_BATCH = 500;
/** Bound on bind parameters per INSERT (PostgreSQL allows 65,535; SQLite 32,766). */
const MAX_PARAMETERS = 30_000;
/** How long the copy waits for the target's tables when another process uses them. */
const TARGET_LOCK_TIMEOUT = '10s';

export interface TableStats {
  rows: number;
  /** Highest sequence number (events, state_changes, drifts, operator_actions); null for text keys or no rows. */
  maxSeq: number | null;
}

export interface TableCopyReport {
  table: LedgerTable;
  sourceRows: number;
  sourceMaxSeq: number | null;
  /** Rows the target held before (0 when it had no ledger tables yet). */
  targetRowsBefore: number;
  /** Read again after the commit; null on a dry run. */
  targetRows: number | null;
  targetMaxSeq: number | null;
  /** Counts and highest sequence equal; null on a dry run. */
  match: boolean | null;
}

export interface LedgerCopyReport {
  /** Both described without credentials (describeLedger). */
  from: string;
  to: string;
  dryRun: boolean;
  overwrite: boolean;
  tables: TableCopyReport[];
  sourceRows: number;
  targetRowsBefore: number;
  /** Whether rows were written (false on a dry run). */
  copied: boolean;
  /** Every table's count and highest sequence equal after the copy; null on a dry run. */
  matched: boolean | null;
  /** On a dry run: why the copy itself would be refused, else null. */
  refusal: string | null;
  ms: number;
}

export interface LedgerCopyOptions {
  from: LedgerLocation;
  to: LedgerLocation;
  /** Count what would be copied and check the target; write nothing anywhere (not even migrations). */
  dryRun?: boolean;
  /** Delete every row the target holds first, in the same transaction; without it a non-empty target is refused. */
  overwrite?: boolean;
  batchSize?: number;
  /** Told how many rows the copy will write, before it starts writing. */
  onStart?: (sourceRows: number) => void;
  /** Told after each batch is written. */
  onProgress?: (table: LedgerTable, rowsCopied: number) => void;
}

/** A copy that must not run as asked (source missing, target not empty, backends): a message for the operator. */
export class LedgerCopyError extends Error {
  override name = 'LedgerCopyError';
}

interface SourceReader {
  /** Table names → column names as the database has them, for the schema check. */
  columns(table: LedgerTable): Promise<string[]>;
  stats(spec: TableSpec): Promise<TableStats>;
  /** Rows whose key is after `after` (all when undefined), in key order. */
  batch(spec: TableSpec, after: unknown, limit: number): Promise<Row[]>;
}

interface TargetWriter {
  stats(spec: TableSpec): Promise<TableStats>;
  clear(): Promise<void>;
  insert(spec: TableSpec, rows: Row[]): Promise<void>;
  /** Makes each sequence hand out numbers after the highest copied one. */
  advanceSequences(): Promise<void>;
}

interface Target {
  /** Per table, or null when the target has no ledger tables (a new database or file). Writes nothing. */
  stats(): Promise<Map<LedgerTable, TableStats> | null>;
  /** Creates the ledger's tables (the same migrations every process applies at start). */
  migrate(): Promise<void>;
  write(work: (writer: TargetWriter) => Promise<void>): Promise<void>;
  close(): Promise<void>;
}

const keyColumn = (table: SQLiteTable | PgTable, key: string): Column =>
  (getTableColumns(table) as Record<string, Column>)[key]!;

const columnNames = (table: SQLiteTable | PgTable): string[] =>
  Object.values(getTableColumns(table) as Record<string, Column>).map((column) => column.name);

const sum = (stats: Iterable<TableStats>) => [...stats].reduce((total, { rows }) => total + rows, 0);

function statsOf(row: { n: unknown; m: unknown } | undefined, spec: TableSpec): TableStats {
  const max = row?.m;
  return {
    rows: Number(row?.n ?? 0),
    maxSeq: spec.sequence && max !== null && max !== undefined ? Number(max) : null,
  };
}

/** The highest key as a number for sequences; text keys are not compared (collations differ between backends). */
const statsQuery = (spec: TableSpec) =>
  `select count(*) as n, ${spec.sequence ? `max("${spec.key}")` : 'null'} as m from "${spec.name}"`;

// ---------------------------------------------------------------------------------------------------------------
// SQLite

type SqliteDb = BetterSQLite3Database<typeof sqliteSchema>;

function sqliteTables(sqlite: Database.Database): Set<string> {
  const rows = sqlite.prepare("select name from sqlite_master where type = 'table'").all() as {
    name: string;
  }[];
  return new Set(rows.map((row) => row.name));
}

function sqliteStats(sqlite: Database.Database, spec: TableSpec): TableStats {
  return statsOf(sqlite.prepare(statsQuery(spec)).get() as { n: unknown; m: unknown }, spec);
}

/** Reads the SQLite ledger inside one read transaction (a WAL snapshot), without writing to it. */
async function withSqliteSource<T>(
  location: { path: string },
  work: (reader: SourceReader) => Promise<T>,
): Promise<T> {
  if (!fs.existsSync(location.path)) throw new LedgerCopyError(`no SQLite ledger at ${location.path}`);
  const sqlite = new Database(location.path, { readonly: true, fileMustExist: true });
  try {
    sqlite.pragma('busy_timeout = 5000');
    const db: SqliteDb = drizzleSqlite(sqlite, { schema: sqliteSchema });
    sqlite.exec('begin');
    const present = sqliteTables(sqlite);
    const reader: SourceReader = {
      columns: async (table) =>
        present.has(table)
          ? (sqlite.pragma(`table_info("${table}")`) as { name: string }[]).map((column) => column.name)
          : [],
      stats: async (spec) => sqliteStats(sqlite, spec),
      batch: async (spec, after, limit) => {
        const key = keyColumn(spec.sqlite, spec.key);
        return db
          .select()
          .from(spec.sqlite)
          .where(after === undefined ? undefined : gt(key, after))
          .orderBy(asc(key))
          .limit(limit)
          .all() as Row[];
      },
    };
    try {
      return await work(reader);
    } finally {
      sqlite.exec('rollback');
    }
  } finally {
    sqlite.close();
  }
}

function sqliteTarget(location: { path: string }): Target {
  let sqlite: Database.Database | undefined;
  const open = () => {
    sqlite ??= new Database(location.path, { fileMustExist: true });
    sqlite.pragma('foreign_keys = ON');
    sqlite.pragma('busy_timeout = 10000');
    return sqlite;
  };
  return {
    async stats() {
      if (!fs.existsSync(location.path)) return null;
      const reading = new Database(location.path, { readonly: true, fileMustExist: true });
      try {
        const present = sqliteTables(reading);
        if (!LEDGER_TABLES.some((table) => present.has(table))) return null;
        return new Map(
          TABLES.map((spec) => [
            spec.name,
            present.has(spec.name) ? sqliteStats(reading, spec) : { rows: 0, maxSeq: null },
          ]),
        );
      } finally {
        reading.close();
      }
    },
    async migrate() {
      await openSqliteLedger({ path: location.path }).close();
    },
    async write(work) {
      const connection = open();
      const db: SqliteDb = drizzleSqlite(connection, { schema: sqliteSchema });
      // IMMEDIATE: the write lock is taken now, so no other writer slips in between the check and the copy.
      connection.exec('begin immediate');
      try {
        await work({
          stats: async (spec) => sqliteStats(connection, spec),
          clear: async () => {
            for (const spec of [...TABLES].reverse()) db.delete(spec.sqlite).run();
            // Autoincrement remembers the highest id ever used; forget it so the copied ids are the highest.
            connection.exec(
              `delete from sqlite_sequence where name in (${LEDGER_TABLES.map((t) => `'${t}'`).join(', ')})`,
            );
          },
          insert: async (spec, rows) => {
            db.insert(spec.sqlite)
              .values(rows as never)
              .run();
          },
          // An explicit id above the table's sequence moves sqlite_sequence up by itself.
          advanceSequences: async () => undefined,
        });
        connection.exec('commit');
      } catch (error) {
        if (connection.inTransaction) connection.exec('rollback');
        throw error;
      }
    },
    async close() {
      sqlite?.close();
    },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// PostgreSQL

type PgLocation = Extract<LedgerLocation, { kind: 'postgres' }>;
type PgDb = NodePgDatabase<typeof pgSchema>;

/**
 * The copy's own connections, with the ledger's TLS settings. No statement timeout: a copy runs large batches and
 * whole-table counts, not the service's short statements that LEDGER_STATEMENT_TIMEOUT bounds.
 */
function copyPool(location: PgLocation): Pool {
  const tls = location.tls ?? 'off';
  const config: PoolConfig = {
    connectionString: location.url,
    max: 2,
    connectionTimeoutMillis: 10_000,
    application_name: 'paystate ledger copy',
    ssl:
      tls === 'off'
        ? false
        : {
            rejectUnauthorized: tls === 'verify',
            ...(location.tlsCaFile ? { ca: fs.readFileSync(location.tlsCaFile, 'utf8') } : {}),
          },
  };
  const pool = new Pool(config);
  pool.on('error', () => undefined);
  return pool;
}

async function pgPresentTables(client: Pool | PoolClient): Promise<Set<string>> {
  const { rows } = await client.query<{ name: string }>(
    'select t as name from unnest($1::text[]) as t where to_regclass(t) is not null',
    [[...LEDGER_TABLES]],
  );
  return new Set(rows.map((row) => row.name));
}

async function pgStats(client: Pool | PoolClient, spec: TableSpec): Promise<TableStats> {
  const { rows } = await client.query<{ n: unknown; m: unknown }>(statsQuery(spec));
  return statsOf(rows[0], spec);
}

/** Reads the PostgreSQL ledger inside one REPEATABLE READ, READ ONLY transaction: one snapshot. */
async function withPgSource<T>(location: PgLocation, work: (reader: SourceReader) => Promise<T>): Promise<T> {
  const pool = copyPool(location);
  try {
    const client = await pool.connect();
    try {
      const present = await pgPresentTables(client);
      if (present.size === 0) throw new LedgerCopyError(`no ledger tables in ${describeLedger(location)}`);
      const db: PgDb = drizzlePg(client, { schema: pgSchema });
      await client.query('begin isolation level repeatable read read only');
      try {
        return await work({
          columns: async (table) =>
            (
              await client.query<{ name: string }>(
                `select attname as name from pg_attribute
                  where attrelid = to_regclass($1) and attnum > 0 and not attisdropped`,
                [table],
              )
            ).rows.map((row) => row.name),
          stats: (spec) => pgStats(client, spec),
          batch: async (spec, after, limit) => {
            const key = keyColumn(spec.pg, spec.key);
            return (await db
              .select()
              .from(spec.pg)
              .where(after === undefined ? undefined : gt(key, after))
              .orderBy(asc(key))
              .limit(limit)) as Row[];
          },
        });
      } finally {
        await client.query('rollback');
      }
    } finally {
      client.release();
    }
  } finally {
    await pool.end();
  }
}

function pgTarget(location: PgLocation): Target {
  const pool = copyPool(location);
  const tableList = LEDGER_TABLES.map((table) => `"${table}"`).join(', ');
  return {
    async stats() {
      const present = await pgPresentTables(pool);
      if (present.size === 0) return null;
      const stats = new Map<LedgerTable, TableStats>();
      for (const spec of TABLES)
        stats.set(spec.name, present.has(spec.name) ? await pgStats(pool, spec) : { rows: 0, maxSeq: null });
      return stats;
    },
    async migrate() {
      const { kind: _kind, ...settings } = location;
      await (await openPgLedger(settings)).close();
    },
    async write(work) {
      const client = await pool.connect();
      try {
        const db: PgDb = drizzlePg(client, { schema: pgSchema });
        await client.query('begin');
        try {
          await client.query(`set local lock_timeout = '${TARGET_LOCK_TIMEOUT}'`);
          // Readers may go on; no other writer can add rows between the emptiness check and the commit.
          try {
            await client.query(`lock table ${tableList} in exclusive mode`);
          } catch (error) {
            if ((error as { code?: string }).code !== '55P03') throw error;
            throw new LedgerCopyError(
              `the target's tables are in use (no lock within ${TARGET_LOCK_TIMEOUT}): stop the processes using ${describeLedger(location)}`,
            );
          }
          await work({
            stats: (spec) => pgStats(client, spec),
            clear: async () => {
              await client.query(`truncate ${tableList} restart identity`);
            },
            insert: async (spec, rows) => {
              await db.insert(spec.pg).values(rows as never);
            },
            advanceSequences: async () => {
              for (const spec of TABLES.filter((table) => table.sequence))
                await client.query(
                  `select setval(pg_get_serial_sequence($1, $2),
                                 coalesce((select max("${spec.key}") from "${spec.name}"), 0) + 1, false)`,
                  [spec.name, spec.key],
                );
            },
          });
          await client.query('commit');
        } catch (error) {
          await client.query('rollback').catch(() => undefined);
          throw error;
        }
      } finally {
        client.release();
      }
    },
    async close() {
      await pool.end();
    },
  };
}

// ---------------------------------------------------------------------------------------------------------------

function withSource<T>(location: LedgerLocation, work: (reader: SourceReader) => Promise<T>): Promise<T> {
  return location.kind === 'sqlite' ? withSqliteSource(location, work) : withPgSource(location, work);
}

const openTarget = (location: LedgerLocation): Target =>
  location.kind === 'sqlite' ? sqliteTarget(location) : pgTarget(location);

/** The source must have every column of this version's schema (a ledger, migrated by a current process). */
async function checkSourceSchema(reader: SourceReader, kind: LedgerLocation['kind']): Promise<void> {
  for (const spec of TABLES) {
    const present = new Set(await reader.columns(spec.name));
    if (present.size === 0)
      throw new LedgerCopyError(`the source has no table ${spec.name}: is it a paystate ledger?`);
    const missing = columnNames(kind === 'sqlite' ? spec.sqlite : spec.pg).filter(
      (column) => !present.has(column),
    );
    if (missing.length)
      throw new LedgerCopyError(
        `the source's table ${spec.name} lacks ${missing.join(', ')}: it predates this version's schema; ` +
          'start this version of paystate against it once (processes apply migrations at start), then copy',
      );
  }
}

function refusalFor(targetRows: number, to: LedgerLocation): string {
  return (
    `the target (${describeLedger(to)}) already holds ${targetRows} row(s): ` +
    'copy only into an empty ledger, or pass --overwrite to replace them'
  );
}

/** Copies every row of `from` into `to` (or, with dryRun, only counts and checks). See the file comment. */
export async function copyLedger(options: LedgerCopyOptions): Promise<LedgerCopyReport> {
  const started = Date.now();
  const { from, to } = options;
  const dryRun = options.dryRun ?? false;
  const overwrite = options.overwrite ?? false;
  const batchSize = Math.max(1, Math.floor(options.batchSize ?? DEFAULT_COPY_BATCH));
  if (from.kind === to.kind)
    throw new LedgerCopyError(
      `a copy goes from one backend to the other (sqlite → postgres or postgres → sqlite), not ${from.kind} → ${to.kind}`,
    );

  return withSource(from, async (source) => {
    await checkSourceSchema(source, from.kind);
    const sourceStats = new Map<LedgerTable, TableStats>();
    for (const spec of TABLES) sourceStats.set(spec.name, await source.stats(spec));

    const target = openTarget(to);
    try {
      const before = await target.stats();
      const targetRowsBefore = before ? sum(before.values()) : 0;
      const refusal = targetRowsBefore > 0 && !overwrite ? refusalFor(targetRowsBefore, to) : null;
      if (refusal && !dryRun) throw new LedgerCopyError(refusal);

      let after: Map<LedgerTable, TableStats> | null = null;
      if (!dryRun) {
        options.onStart?.(sum(sourceStats.values()));
        await target.migrate();
        await target.write(async (writer) => {
          // Checked again under the lock: a writer may have started since the first look.
          let held = 0;
          for (const spec of TABLES) held += (await writer.stats(spec)).rows;
          if (held > 0 && !overwrite) throw new LedgerCopyError(refusalFor(held, to));
          if (held > 0) await writer.clear();
          for (const spec of TABLES) {
            const perInsert = Math.max(
              1,
              Math.min(batchSize, Math.floor(MAX_PARAMETERS / columnNames(spec.sqlite).length)),
            );
            let last: unknown = undefined;
            let copied = 0;
            for (;;) {
              const rows = await source.batch(spec, last, batchSize);
              if (rows.length === 0) break;
              for (let i = 0; i < rows.length; i += perInsert)
                await writer.insert(spec, rows.slice(i, i + perInsert));
              copied += rows.length;
              last = rows[rows.length - 1]![spec.key];
              options.onProgress?.(spec.name, copied);
              if (rows.length < batchSize) break;
            }
          }
          await writer.advanceSequences();
        });
        after = await target.stats();
      }

      const tables = TABLES.map((spec): TableCopyReport => {
        const copied = sourceStats.get(spec.name)!;
        const now = after?.get(spec.name) ?? null;
        return {
          table: spec.name,
          sourceRows: copied.rows,
          sourceMaxSeq: copied.maxSeq,
          targetRowsBefore: before?.get(spec.name)?.rows ?? 0,
          targetRows: now?.rows ?? null,
          targetMaxSeq: now?.maxSeq ?? null,
          match: now ? now.rows === copied.rows && now.maxSeq === copied.maxSeq : null,
        };
      });
      return {
        from: describeLedger(from),
        to: describeLedger(to),
        dryRun,
        overwrite,
        tables,
        sourceRows: sum(sourceStats.values()),
        targetRowsBefore,
        copied: !dryRun,
        matched: dryRun ? null : tables.every((table) => table.match),
        refusal: dryRun ? refusal : null,
        ms: Date.now() - started,
      };
    } finally {
      await target.close();
    }
  });
}

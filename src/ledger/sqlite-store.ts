import type Database from 'better-sqlite3';
import { eq, getTableColumns, getTableName, inArray } from 'drizzle-orm';
import type { BetterSQLite3Database } from 'drizzle-orm/better-sqlite3';
import type { SQLiteTable } from 'drizzle-orm/sqlite-core';
import type * as schema from './schema';
import { drifts, events, payments, refunds, stateChanges } from './schema';
import type { Payment } from './ledger';
import type { PaymentRowCache } from './sqlite-payment-cache';
import type { LedgerStore } from './store';

export type Db = BetterSQLite3Database<typeof schema>;

type Row = Record<string, unknown>;

/**
 * The apply path's statements run on better-sqlite3 directly: through drizzle each call re-encodes every
 * placeholder and re-maps every column in JavaScript, which cost more than running the statement. The SQL is
 * written from the drizzle schema, so names cannot drift, and values are encoded as drizzle does: a boolean
 * column (`mode: 'boolean'`) is written `value ? 1 : 0` and read `Number(value) === 1`, null as null.
 */
export function sqlTable(table: SQLiteTable, except: readonly string[] = []) {
  const columns = Object.entries(getTableColumns(table))
    .filter(([key]) => !except.includes(key))
    .map(([key, column]) => ({ key, name: `"${column.name}"`, flag: column.columnType === 'SQLiteBoolean' }));
  const flags = new Set(columns.filter((column) => column.flag).map((column) => column.key));
  const keys = columns.map((column) => column.key);
  const nameOf = new Map(columns.map((column) => [column.key, column.name]));
  const name = `"${getTableName(table)}"`;
  const selected = columns.map((column) => column.name).join(', ');
  return {
    name,
    /** The select list of a whole row, read with `raw()` and `decode`. */
    selected,
    /** The same, each column named with its table (for a join). */
    qualified: columns.map((column) => `${name}.${column.name}`).join(', '),
    /** How many values a whole row is: where the next table's values begin in a joined row. */
    width: columns.length,
    inserted: `(${selected}) values (${columns.map(() => '?').join(', ')})`,
    column: (key: string) => nameOf.get(key)!,
    keys,
    /**
     * The values of `row`, bound by position and spread as arguments: better-sqlite3 reads an array or an object
     * of named values element by element through V8's C++ API (~1.5 µs more for a row of 20). A null flag stays
     * null ("not said"), as drizzle and the PostgreSQL ledger store it.
     */
    values: (row: Row, of: readonly string[] = keys): unknown[] =>
      of.map((key) => (flags.has(key) && row[key] !== null ? (row[key] ? 1 : 0) : row[key])),
    /** A row read as an array (better-sqlite3 builds a row object through its C++ API, ~2× slower). */
    decode: <T>(values: unknown, offset = 0): T | undefined => {
      if (values === undefined) return undefined;
      const row: Row = {};
      for (let i = 0; i < columns.length; i++) {
        const value = (values as unknown[])[offset + i];
        row[columns[i]!.key] = columns[i]!.flag && value !== null ? Number(value) === 1 : value;
      }
      return row as T;
    },
  };
}

/**
 * Writes a row read in this transaction and changed in memory: an UPDATE of exactly the columns that changed,
 * prepared once per column set (a handful occur). Writing unchanged columns is not free: SQLite rewrites the
 * index entries of every indexed column in the SET list, which multiplies the pages each COMMIT writes.
 */
function changedColumnsUpdate<T extends { id: string }>(
  sqlite: Database.Database,
  table: ReturnType<typeof sqlTable>,
) {
  const columns = table.keys.filter((key) => key !== 'id');
  const prepareUpdate = (changed: string[]) =>
    sqlite.prepare(
      `update ${table.name} set ${changed.map((key) => `${table.column(key)} = ?`).join(', ')} where ${table.column('id')} = ?`,
    );
  const prepared = new Map<string, Database.Statement>();
  return (before: T, after: T): void => {
    const changed = columns.filter((key) => (before as Row)[key] !== (after as Row)[key]);
    if (changed.length === 0) return;
    const shape = changed.join(',');
    let update = prepared.get(shape);
    if (!update) prepared.set(shape, (update = prepareUpdate(changed)));
    update.run(...table.values(after, [...changed, 'id']));
  };
}

/**
 * The apply path's statements, prepared once per ledger: unprepared, SQLite would compile each again on every
 * call (~100 µs each, against a few µs to run it).
 */
function prepareStatements(sqlite: Database.Database) {
  const e = sqlTable(events);
  const newEvent = sqlTable(events, ['seq', 'deliveries']);
  const p = sqlTable(payments);
  const c = sqlTable(stateChanges, ['seq']);
  const d = sqlTable(drifts, ['seq']);
  const r = sqlTable(refunds);
  const byRichest = `order by ${p.column('capturedTotal')} desc, ${p.column('id')} asc limit 1`;
  return {
    tables: { newEvent, p, c, d, r },
    /** The dedupe gate. */
    eventById: sqlite.prepare(
      `select ${e.column('seq')} as "seq", ${e.column('outcome')} as "outcome", ${e.column('paymentId')} as "paymentId" ` +
        `from ${e.name} where ${e.column('eventId')} = ?`,
    ),
    countDelivery: sqlite.prepare(
      `update ${e.name} set ${e.column('deliveries')} = ${e.column('deliveries')} + 1 where ${e.column('seq')} = ?`,
    ),
    insertEvent: sqlite.prepare(`insert into ${e.name} ${newEvent.inserted}`),
    paymentById: sqlite.prepare(`select ${p.selected} from ${p.name} where ${p.column('id')} = ?`).raw(),
    insertPayment: sqlite.prepare(`insert into ${p.name} ${p.inserted}`),
    insertChange: sqlite.prepare(`insert into ${c.name} ${c.inserted}`),
    insertDrift: sqlite.prepare(`insert into ${d.name} ${d.inserted}`),
    refundById: sqlite.prepare(`select ${r.selected} from ${r.name} where ${r.column('id')} = ?`).raw(),
    insertRefund: sqlite.prepare(`insert into ${r.name} ${r.inserted}`),
    refundsByBase: sqlite.prepare(
      `select ${r.column('id')} as "id", ${r.column('paymentId')} as "previous" from ${r.name} ` +
        `where ${r.column('paymentBase')} = ?`,
    ),
    refundedTotal: sqlite.prepare(
      `select sum(${r.column('amount')}) as "total" from ${r.name} ` +
        `where ${r.column('paymentId')} = ? and ${r.column('stage')} = 'refunded'`,
    ),
    eventCountOf: sqlite.prepare(
      `select count(*) as "n" from ${e.name} where ${e.column('paymentId')} = ? and ${e.column('outcome')} != 'failed'`,
    ),
    paymentByBase: sqlite
      .prepare(`select ${p.selected} from ${p.name} where ${p.column('base')} = ? ${byRichest}`)
      .raw(),
    paymentByMerchantReference: sqlite
      .prepare(`select ${p.selected} from ${p.name} where ${p.column('merchantReference')} = ? ${byRichest}`)
      .raw(),
  };
}

/**
 * The ledger store on SQLite. Its statements run on the connection, so they take part in whatever transaction
 * (and savepoint) the connection is in.
 */
export function createSqliteStore(db: Db, sqlite: Database.Database, cache?: PaymentRowCache): LedgerStore {
  const stmt = prepareStatements(sqlite);
  const { newEvent, p, c, d, r } = stmt.tables;
  const readPayment = (paymentId: string) => p.decode<Payment>(stmt.paymentById.get(paymentId));
  const updatePayment = changedColumnsUpdate<Payment>(sqlite, p);
  return {
    eventById: (eventId) => stmt.eventById.get(eventId) as ReturnType<LedgerStore['eventById']>,
    countDelivery: (seq) => void stmt.countDelivery.run(seq),
    insertEvent: (columns) => Number(stmt.insertEvent.run(...newEvent.values(columns)).lastInsertRowid),
    updateEvent: (seq, columns) => void db.update(events).set(columns).where(eq(events.seq, seq)).run(),
    paymentById: cache
      ? (paymentId) => {
          const cached = cache.get(paymentId);
          if (cached) return cached;
          const payment = readPayment(paymentId);
          if (payment) cache.put(payment);
          return payment;
        }
      : readPayment,
    insertPayment: (payment) => {
      stmt.insertPayment.run(...p.values(payment));
      cache?.put(payment);
    },
    updatePayment: (before, after) => {
      updatePayment(before, after);
      cache?.put(after);
    },
    insertChange: (change) => void stmt.insertChange.run(...c.values(change)),
    insertDrift: (drift) => void stmt.insertDrift.run(...d.values(drift)),
    refundById: (refundId) => r.decode(stmt.refundById.get(refundId)),
    insertRefund: (refund) => void stmt.insertRefund.run(...r.values(refund)),
    updateRefund: changedColumnsUpdate(sqlite, r),
    refundsByBase: (base) => stmt.refundsByBase.all(base) as ReturnType<LedgerStore['refundsByBase']>,
    refundedTotal: (paymentId) =>
      Number((stmt.refundedTotal.get(paymentId) as { total: number | null }).total ?? 0),
    eventCountOf: (paymentId) => (stmt.eventCountOf.get(paymentId) as { n: number }).n,
    paymentByBase: (base) => p.decode(stmt.paymentByBase.get(base)),
    paymentByMerchantReference: (merchantReference) =>
      p.decode(stmt.paymentByMerchantReference.get(merchantReference)),
    linkRefunds: (refundIds, paymentId) => {
      db.update(refunds).set({ paymentId }).where(inArray(refunds.id, refundIds)).run();
      db.update(events).set({ paymentId }).where(inArray(events.refundId, refundIds)).run();
    },
  };
}

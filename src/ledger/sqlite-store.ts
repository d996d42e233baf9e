import { and, asc, desc, eq, getTableColumns, inArray, sql, sum, type Placeholder } from 'drizzle-orm';
import type { BetterSQLite3Database } from 'drizzle-orm/better-sqlite3';
import type { SQLiteTable, SQLiteUpdateSetSource } from 'drizzle-orm/sqlite-core';
import type * as schema from './schema';
import { drifts, events, payments, refunds, stateChanges } from './schema';
import type { LedgerStore } from './store';

export type Db = BetterSQLite3Database<typeof schema>;

type Key<T extends SQLiteTable> = keyof T['$inferInsert'] & string;

/** One named placeholder per column, named after the schema's key, so a typed row object fills them all. */
function placeholders<T extends SQLiteTable, K extends Key<T>>(table: T, keys: readonly K[]) {
  const values = {} as Record<K, Placeholder>;
  for (const key of keys) values[key] = sql.placeholder(key);
  return values;
}

/** drizzle binds a placeholder in set() like a value, through the column's encoder; only its types omit it. */
function placeholderSet<T extends SQLiteTable>(table: T, keys: readonly Key<T>[]) {
  return placeholders(table, keys) as unknown as SQLiteUpdateSetSource<T>;
}

const keysOf = <T extends SQLiteTable>(table: T, except: readonly Key<T>[] = []) =>
  (Object.keys(getTableColumns(table)) as Key<T>[]).filter((key) => !except.includes(key));

const id = sql.placeholder('id');

type Row = Record<string, unknown>;

/**
 * Writes a row read in this transaction and changed in memory: an UPDATE of exactly the columns that changed,
 * prepared once per column set (a handful occur). Writing unchanged columns is not free: SQLite rewrites the
 * index entries of every indexed column in the SET list, which multiplies the pages each COMMIT writes.
 */
function changedColumnsUpdate<T extends typeof payments | typeof refunds>(db: Db, table: T) {
  const columns = keysOf(table, ['id']);
  const prepareUpdate = (changed: Key<T>[]) =>
    db.update(table).set(placeholderSet(table, changed)).where(eq(table.id, id)).prepare();
  const prepared = new Map<string, ReturnType<typeof prepareUpdate>>();
  return (before: T['$inferSelect'], after: T['$inferSelect']): void => {
    const changed = columns.filter((key) => (before as Row)[key] !== (after as Row)[key]);
    if (changed.length === 0) return;
    const shape = changed.join(',');
    let update = prepared.get(shape);
    if (!update) prepared.set(shape, (update = prepareUpdate(changed)));
    update.run(after);
  };
}

/**
 * The apply path's statements, prepared once per ledger: unprepared, drizzle rebuilds each query in JavaScript
 * and SQLite compiles it again on every call (~100 µs each, against a few µs to run it).
 */
function prepareStatements(db: Db) {
  const eventKeys = keysOf(events, ['seq', 'deliveries']);
  return {
    /** The dedupe gate. */
    eventById: db
      .select({ seq: events.seq, outcome: events.outcome, paymentId: events.paymentId })
      .from(events)
      .where(eq(events.eventId, sql.placeholder('eventId')))
      .prepare(),
    countDelivery: db
      .update(events)
      .set({ deliveries: sql`${events.deliveries} + 1` })
      .where(eq(events.seq, sql.placeholder('seq')))
      .prepare(),
    insertEvent: db.insert(events).values(placeholders(events, eventKeys)).prepare(),
    paymentById: db.select().from(payments).where(eq(payments.id, id)).prepare(),
    insertPayment: db
      .insert(payments)
      .values(placeholders(payments, keysOf(payments)))
      .prepare(),
    updatePayment: changedColumnsUpdate(db, payments),
    insertChange: db
      .insert(stateChanges)
      .values(placeholders(stateChanges, keysOf(stateChanges, ['seq'])))
      .prepare(),
    insertDrift: db
      .insert(drifts)
      .values(placeholders(drifts, keysOf(drifts, ['seq'])))
      .prepare(),
    refundById: db.select().from(refunds).where(eq(refunds.id, id)).prepare(),
    insertRefund: db
      .insert(refunds)
      .values(placeholders(refunds, keysOf(refunds)))
      .prepare(),
    updateRefund: changedColumnsUpdate(db, refunds),
    refundsByBase: db
      .select({ id: refunds.id, previous: refunds.paymentId })
      .from(refunds)
      .where(eq(refunds.paymentBase, sql.placeholder('base')))
      .prepare(),
    refundedTotal: db
      .select({ total: sum(refunds.amount) })
      .from(refunds)
      .where(and(eq(refunds.paymentId, sql.placeholder('paymentId')), eq(refunds.stage, 'refunded')))
      .prepare(),
    paymentByBase: db
      .select()
      .from(payments)
      .where(eq(payments.base, sql.placeholder('base')))
      .orderBy(desc(payments.capturedTotal), asc(payments.id))
      .limit(1)
      .prepare(),
    paymentByMerchantReference: db
      .select()
      .from(payments)
      .where(eq(payments.merchantReference, sql.placeholder('merchantReference')))
      .orderBy(desc(payments.capturedTotal), asc(payments.id))
      .limit(1)
      .prepare(),
  };
}

/**
 * The ledger store on SQLite. Its statements run on the connection, so they take part in whatever transaction
 * (and savepoint) the connection is in.
 */
export function createSqliteStore(db: Db): LedgerStore {
  const stmt = prepareStatements(db);
  return {
    eventById: (eventId) => stmt.eventById.get({ eventId }),
    countDelivery: (seq) => void stmt.countDelivery.run({ seq }),
    insertEvent: (columns) => Number(stmt.insertEvent.run(columns).lastInsertRowid),
    updateEvent: (seq, columns) => void db.update(events).set(columns).where(eq(events.seq, seq)).run(),
    paymentById: (paymentId) => stmt.paymentById.get({ id: paymentId }),
    insertPayment: (payment) => void stmt.insertPayment.run(payment),
    updatePayment: stmt.updatePayment,
    insertChange: (change) => void stmt.insertChange.run(change),
    insertDrift: (drift) => void stmt.insertDrift.run(drift),
    refundById: (refundId) => stmt.refundById.get({ id: refundId }),
    insertRefund: (refund) => void stmt.insertRefund.run(refund),
    updateRefund: stmt.updateRefund,
    refundsByBase: (base) => stmt.refundsByBase.all({ base }),
    refundedTotal: (paymentId) => Number(stmt.refundedTotal.get({ paymentId })?.total ?? 0),
    paymentByBase: (base) => stmt.paymentByBase.get({ base }),
    paymentByMerchantReference: (merchantReference) =>
      stmt.paymentByMerchantReference.get({ merchantReference }),
    linkRefunds: (refundIds, paymentId) => {
      db.update(refunds).set({ paymentId }).where(inArray(refunds.id, refundIds)).run();
      db.update(events).set({ paymentId }).where(inArray(events.refundId, refundIds)).run();
    },
  };
}

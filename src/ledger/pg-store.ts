import { getTableColumns, getTableName } from 'drizzle-orm';
import type { PgTable } from 'drizzle-orm/pg-core';
import type { NodePgDatabase } from 'drizzle-orm/node-postgres';
import type { PoolClient, QueryConfig } from 'pg';
import type { Payment, Refund } from './ledger';
import type * as pgSchema from './pg-schema';
import { drifts, events, payments, refunds, stateChanges } from './pg-schema';
import type { AsyncLedgerStore } from './store';

export type PgDb = NodePgDatabase<typeof pgSchema>;

/**
 * One advisory-lock key for the change feed: whoever writes a change holds it until COMMIT, so changes commit in
 * seq order and a reader paging by seq never passes a change that a slower transaction commits later. Inserted
 * together, one transaction's changes keep the order they were recorded in.
 */
const CHANGE_FEED_LOCK = 7_001_001;

type Row = Record<string, unknown>;

/** Columns of a drizzle table: schema key (camelCase) and SQL name. */
function columnsOf(table: PgTable, except: string[] = []) {
  return Object.entries(getTableColumns(table))
    .filter(([key]) => !except.includes(key))
    .map(([key, column]) => ({ key, name: column.name }));
}

const quoted = (name: string) => `"${name}"`;

/** `"snake" as "camel", …`: rows come back keyed like drizzle's, so they are the schema's row types. */
function selectList(table: PgTable): string {
  return columnsOf(table)
    .map(({ key, name }) => `${quoted(name)} as ${quoted(key)}`)
    .join(', ');
}

/**
 * Statements are named, so each connection parses and plans one once and then only binds and runs it. drizzle
 * builds each query anew in JavaScript, which cost more than the round trip; the schema still comes from
 * pg-schema.ts, so names and columns cannot drift from drizzle's view.
 */
function statement(name: string, text: string) {
  return (values: unknown[]): QueryConfig => ({ name: `paystate_${name}`, text, values });
}

function insertStatement(name: string, table: PgTable, except: string[] = [], returning = '') {
  const columns = columnsOf(table, except);
  const placeholders = columns.map((_, i) => `$${i + 1}`).join(', ');
  const text =
    `insert into ${quoted(getTableName(table))} (${columns.map((c) => quoted(c.name)).join(', ')}) ` +
    `values (${placeholders})${returning}`;
  const prepare = statement(name, text);
  return (row: Row) => prepare(columns.map(({ key }) => row[key] ?? null));
}

/** An UPDATE of exactly the columns that changed, one named statement per column set (a handful occur). */
function changedColumnsUpdate(table: PgTable, keyColumn: string) {
  const tableName = getTableName(table);
  const columns = columnsOf(table, [keyColumn]);
  const prefix = tableName.replace(/_/g, '');
  return (before: Row, after: Row): QueryConfig | null => {
    const changed = columns.filter(({ key }) => before[key] !== after[key]);
    if (changed.length === 0) return null;
    const set = changed.map(({ name }, i) => `${quoted(name)} = $${i + 2}`).join(', ');
    const shape = changed.map(({ key }) => key).join(',');
    return {
      name: `paystate_upd_${prefix}_${shapeId(shape)}`,
      text: `update ${quoted(tableName)} set ${set} where "id" = $1`,
      values: [before[keyColumn], ...changed.map(({ key }) => after[key])],
    };
  };
}

/** A short stable id for a column set (statement names are limited to 63 bytes). */
function shapeId(shape: string): string {
  let hash = 0;
  for (let i = 0; i < shape.length; i++) hash = (Math.imul(hash, 31) + shape.charCodeAt(i)) | 0;
  return (hash >>> 0).toString(36);
}

const paymentColumns = selectList(payments);

const sql = {
  eventById: statement(
    'event_by_id',
    'select "seq", "outcome", "payment_id" as "paymentId" from "events" where "event_id" = $1',
  ),
  countDelivery: statement(
    'count_delivery',
    'update "events" set "deliveries" = "deliveries" + 1 where "seq" = $1',
  ),
  insertEvent: insertStatement('insert_event', events, ['seq', 'deliveries'], ' returning "seq"'),
  updateEvent: (seq: number, row: Row) => {
    const columns = columnsOf(events, ['seq', 'deliveries']);
    const set = columns.map(({ name }, i) => `${quoted(name)} = $${i + 2}`).join(', ');
    return statement(
      'update_event',
      `update "events" set ${set} where "seq" = $1`,
    )([seq, ...columns.map(({ key }) => row[key] ?? null)]);
  },
  paymentById: statement(
    'payment_by_id',
    `select ${paymentColumns} from "payments" where "id" = $1 for update`,
  ),
  insertPayment: insertStatement('insert_payment', payments),
  updatePayment: changedColumnsUpdate(payments, 'id'),
  feedLock: statement('feed_lock', `select pg_advisory_xact_lock(${CHANGE_FEED_LOCK})`),
  insertChanges: (changes: Row[]): QueryConfig => {
    const columns = columnsOf(stateChanges, ['seq']);
    const tuples = changes.map(
      (_, row) => `(${columns.map((_, i) => `$${row * columns.length + i + 1}`).join(', ')})`,
    );
    return {
      name: `paystate_insert_changes_${changes.length}`,
      text:
        `insert into "state_changes" (${columns.map((c) => quoted(c.name)).join(', ')}) ` +
        `values ${tuples.join(', ')}`,
      values: changes.flatMap((change) => columns.map(({ key }) => change[key] ?? null)),
    };
  },
  insertDrift: insertStatement('insert_drift', drifts, ['seq']),
  refundById: statement('refund_by_id', `select ${selectList(refunds)} from "refunds" where "id" = $1`),
  insertRefund: insertStatement('insert_refund', refunds),
  updateRefund: changedColumnsUpdate(refunds, 'id'),
  refundsByBase: statement(
    'refunds_by_base',
    'select "id", "payment_id" as "previous" from "refunds" where "payment_base" = $1 order by "id"',
  ),
  refundedTotal: statement(
    'refunded_total',
    `select coalesce(sum("amount"), 0)::bigint as "total" from "refunds" where "payment_id" = $1 and "stage" = 'refunded'`,
  ),
  eventCountOf: statement(
    'event_count_of',
    `select count(*)::bigint as "n" from "events" where "payment_id" = $1 and "outcome" != 'failed'`,
  ),
  paymentByBase: statement(
    'payment_by_base',
    `select ${paymentColumns} from "payments" where "base" = $1 order by "captured_total" desc, "id" limit 1 for update`,
  ),
  paymentByMerchantReference: statement(
    'payment_by_merchant_reference',
    `select ${paymentColumns} from "payments" where "merchant_reference" = $1 ` +
      'order by "captured_total" desc, "id" limit 1 for update',
  ),
  linkRefunds: statement('link_refunds', 'update "refunds" set "payment_id" = $2 where "id" = any($1)'),
  linkRefundEvents: statement(
    'link_refund_events',
    'update "events" set "payment_id" = $2 where "refund_id" = any($1)',
  ),
};

/**
 * The ledger store on PostgreSQL, on the connection of one transaction. Payment rows are read FOR UPDATE: besides
 * the lock on the payment's id base that the ledger takes first, a refund linked by merchant reference reaches a
 * payment of another base. int8 columns arrive as numbers (the pool's type parser, see pg-ledger.ts).
 */
export function createPgStore(client: PoolClient): AsyncLedgerStore & { writeChanges(): Promise<void> } {
  const changes: Row[] = [];
  const rows = async <T>(query: QueryConfig) => (await client.query(query)).rows as T[];
  const first = async <T>(query: QueryConfig) => (await rows<T>(query))[0];
  const run = async (query: QueryConfig | null) => {
    if (query) await client.query(query);
  };
  return {
    eventById: (eventId) => first(sql.eventById([eventId])),
    countDelivery: (seq) => run(sql.countDelivery([seq])),
    insertEvent: async (columns) => (await first<{ seq: number }>(sql.insertEvent(columns)))!.seq,
    updateEvent: (seq, columns) => run(sql.updateEvent(seq, columns)),
    paymentById: (id) => first<Payment>(sql.paymentById([id])),
    insertPayment: (payment) => run(sql.insertPayment(payment)),
    updatePayment: (before, after) => run(sql.updatePayment(before, after)),
    // Nothing in a transaction reads the feed back: its changes are written last, by writeChanges().
    insertChange: async (change) => void changes.push(change),
    insertDrift: (drift) => run(sql.insertDrift(drift)),
    refundById: (id) => first<Refund>(sql.refundById([id])),
    insertRefund: (refund) => run(sql.insertRefund(refund)),
    updateRefund: (before, after) => run(sql.updateRefund(before, after)),
    refundsByBase: (base) => rows(sql.refundsByBase([base])),
    refundedTotal: async (paymentId) =>
      (await first<{ total: number }>(sql.refundedTotal([paymentId])))!.total,
    eventCountOf: async (paymentId) => (await first<{ n: number }>(sql.eventCountOf([paymentId])))!.n,
    paymentByBase: (base) => first<Payment>(sql.paymentByBase([base])),
    paymentByMerchantReference: (merchantReference) =>
      first<Payment>(sql.paymentByMerchantReference([merchantReference])),
    linkRefunds: async (refundIds, paymentId) => {
      await run(sql.linkRefunds([refundIds, paymentId]));
      await run(sql.linkRefundEvents([refundIds, paymentId]));
    },
    /**
     * The transaction's changes, just before COMMIT, under the feed lock: taken this late, the lock that orders
     * every writer is held for two statements and the COMMIT, not for the whole transaction.
     */
    writeChanges: async () => {
      if (changes.length === 0) return;
      await run(sql.feedLock([]));
      await run(sql.insertChanges(changes));
    },
  };
}

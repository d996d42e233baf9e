import { and, asc, desc, eq, getTableColumns, inArray, sql, sum } from 'drizzle-orm';
import type { NodePgDatabase } from 'drizzle-orm/node-postgres';
import type * as pgSchema from './pg-schema';
import { drifts, events, payments, refunds, stateChanges } from './pg-schema';
import type { AsyncLedgerStore } from './store';

export type PgDb = NodePgDatabase<typeof pgSchema>;
export type PgTx = Parameters<Parameters<PgDb['transaction']>[0]>[0];

/**
 * One advisory-lock key for the change feed: whoever writes a change holds it until COMMIT, so changes commit in
 * seq order and a reader paging by seq never passes a change that a slower transaction commits later.
 */
const CHANGE_FEED_LOCK = 7_001_001;

/** The changed columns of a row read in this transaction, for an UPDATE that writes only those. */
function changedColumns<T extends object>(table: object, before: T, after: T): Partial<T> {
  const changed: Partial<T> = {};
  for (const key of Object.keys(getTableColumns(table as never)) as (keyof T)[]) {
    if (before[key] !== after[key]) changed[key] = after[key];
  }
  return changed;
}

/**
 * The ledger store on PostgreSQL, for one transaction. Payment rows are read FOR UPDATE: besides the lock on
 * the payment's id base that the ledger takes first, a refund linked by merchant reference reaches a payment of
 * another base.
 */
export function createPgStore(tx: PgTx): AsyncLedgerStore {
  let holdsFeedLock = false;
  return {
    eventById: async (eventId) =>
      (
        await tx
          .select({ seq: events.seq, outcome: events.outcome, paymentId: events.paymentId })
          .from(events)
          .where(eq(events.eventId, eventId))
      )[0],
    countDelivery: async (seq) => {
      await tx
        .update(events)
        .set({ deliveries: sql`${events.deliveries} + 1` })
        .where(eq(events.seq, seq));
    },
    insertEvent: async (columns) =>
      (await tx.insert(events).values(columns).returning({ seq: events.seq }))[0]!.seq,
    updateEvent: async (seq, columns) => {
      await tx.update(events).set(columns).where(eq(events.seq, seq));
    },
    paymentById: async (id) => (await tx.select().from(payments).where(eq(payments.id, id)).for('update'))[0],
    insertPayment: async (payment) => {
      await tx.insert(payments).values(payment);
    },
    updatePayment: async (before, after) => {
      const changed = changedColumns(payments, before, after);
      if (Object.keys(changed).length)
        await tx.update(payments).set(changed).where(eq(payments.id, before.id));
    },
    insertChange: async (change) => {
      if (!holdsFeedLock) {
        await tx.execute(sql`select pg_advisory_xact_lock(${CHANGE_FEED_LOCK})`);
        holdsFeedLock = true;
      }
      await tx.insert(stateChanges).values(change);
    },
    insertDrift: async (drift) => {
      await tx.insert(drifts).values(drift);
    },
    refundById: async (id) => (await tx.select().from(refunds).where(eq(refunds.id, id)))[0],
    insertRefund: async (refund) => {
      await tx.insert(refunds).values(refund);
    },
    updateRefund: async (before, after) => {
      const changed = changedColumns(refunds, before, after);
      if (Object.keys(changed).length) await tx.update(refunds).set(changed).where(eq(refunds.id, before.id));
    },
    refundsByBase: async (base) =>
      tx
        .select({ id: refunds.id, previous: refunds.paymentId })
        .from(refunds)
        .where(eq(refunds.paymentBase, base))
        .orderBy(asc(refunds.id)),
    refundedTotal: async (paymentId) => {
      const [row] = await tx
        .select({ total: sum(refunds.amount) })
        .from(refunds)
        .where(and(eq(refunds.paymentId, paymentId), eq(refunds.stage, 'refunded')));
      return Number(row?.total ?? 0);
    },
    paymentByBase: async (base) =>
      (
        await tx
          .select()
          .from(payments)
          .where(eq(payments.base, base))
          .orderBy(desc(payments.capturedTotal), asc(payments.id))
          .limit(1)
          .for('update')
      )[0],
    paymentByMerchantReference: async (merchantReference) =>
      (
        await tx
          .select()
          .from(payments)
          .where(eq(payments.merchantReference, merchantReference))
          .orderBy(desc(payments.capturedTotal), asc(payments.id))
          .limit(1)
          .for('update')
      )[0],
    linkRefunds: async (refundIds, paymentId) => {
      await tx.update(refunds).set({ paymentId }).where(inArray(refunds.id, refundIds));
      await tx.update(events).set({ paymentId }).where(inArray(events.refundId, refundIds));
    },
  };
}

import { and, asc, desc, eq, inArray, sum } from 'drizzle-orm';
import { decide, type Decision } from './decide';
import type { Payment } from './ledger';
import { paymentBaseOf, type RefundObservation } from './observation';
import { events, payments, refunds } from './schema';
import { recordFactChange } from './sqlite-changes';
import type { Db } from './sqlite-events';

/** A refund names no payment: link it by the shared id base, else by merchant reference. */
export function findRefundedPayment(tx: Db, observation: RefundObservation): Payment | undefined {
  const byBase = tx
    .select()
    .from(payments)
    .where(eq(payments.base, observation.paymentBase))
    .orderBy(desc(payments.capturedTotal), asc(payments.id))
    .get();
  if (byBase || observation.merchantReference === null) return byBase;
  return tx
    .select()
    .from(payments)
    .where(eq(payments.merchantReference, observation.merchantReference))
    .orderBy(desc(payments.capturedTotal), asc(payments.id))
    .get();
}

/** Applies a refund's status to its row by the same ordering rule as payments. */
export function upsertRefund(
  tx: Db,
  observation: RefundObservation,
  paymentId: string | null,
  at: number,
): { decision: Decision; paymentId: string | null } {
  const held = tx.select().from(refunds).where(eq(refunds.id, observation.refundId)).get();
  const decision = decide(held, observation);
  const linkedTo = paymentId ?? held?.paymentId ?? null;
  if (decision.verdict !== 'apply') return { decision, paymentId: linkedTo };
  const status = {
    paymentId: linkedTo,
    statusCode: observation.statusCode,
    status: observation.status,
    stage: decision.next.stage,
    rank: decision.next.rank,
    changeTime: observation.changeTime,
    updatedAt: at,
  };
  if (held) {
    tx.update(refunds).set(status).where(eq(refunds.id, held.id)).run();
  } else {
    tx.insert(refunds)
      .values({
        id: observation.refundId,
        paymentBase: observation.paymentBase,
        merchantReference: observation.merchantReference,
        amount: observation.amount,
        currency: observation.currency,
        ...status,
      })
      .run();
  }
  return { decision, paymentId: linkedTo };
}

/**
 * The refunded total is a sum over refund rows (never an increment), so two refunds with equal amounts both
 * count and a re-delivered refund never counts twice.
 */
export function recomputeRefundedTotal(
  tx: Db,
  paymentId: string,
  at: number,
  eventSeq: number | null,
  cause: string,
): boolean {
  const payment = tx.select().from(payments).where(eq(payments.id, paymentId)).get();
  if (!payment) return false;
  const total = Number(
    tx
      .select({ total: sum(refunds.amount) })
      .from(refunds)
      .where(and(eq(refunds.paymentId, paymentId), eq(refunds.stage, 'refunded')))
      .get()?.total ?? 0,
  );
  if (total === payment.refundedTotal) return false;
  tx.update(payments).set({ refundedTotal: total, updatedAt: at }).where(eq(payments.id, paymentId)).run();
  recordFactChange(tx, payment, {
    kind: 'refund',
    cause: `${cause}; refunded total ${payment.refundedTotal} → ${total}`,
    eventSeq,
    at,
  });
  return true;
}

/**
 * Refunds that arrived before their payment: those waiting for any payment, and those a merchant-reference
 * fallback gave to another attempt of the same order. A refund belongs to the payment of its own id base.
 */
export function linkWaitingRefunds(tx: Db, paymentId: string, at: number): void {
  const base = paymentBaseOf(paymentId);
  const toLink = tx
    .select({ id: refunds.id, previous: refunds.paymentId })
    .from(refunds)
    .where(eq(refunds.paymentBase, base))
    .all()
    .filter((refund) => refund.previous === null || paymentBaseOf(refund.previous) !== base);
  if (toLink.length === 0) return;
  const ids = toLink.map((refund) => refund.id);
  tx.update(refunds).set({ paymentId }).where(inArray(refunds.id, ids)).run();
  tx.update(events).set({ paymentId }).where(inArray(events.refundId, ids)).run();
  const previous = new Set(toLink.map((refund) => refund.previous).filter((id) => id !== null));
  for (const other of previous) {
    recomputeRefundedTotal(tx, other, at, null, `refund(s) moved to ${paymentId}, their own id base`);
  }
  recomputeRefundedTotal(tx, paymentId, at, null, `linked ${ids.length} refund(s) that arrived first`);
}

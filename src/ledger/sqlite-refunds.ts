import { inArray } from 'drizzle-orm';
import { decide, type Decision } from './decide';
import type { Payment } from './ledger';
import { paymentBaseOf, type RefundObservation } from './observation';
import { events, refunds } from './schema';
import { recordFactChange, savePayment } from './sqlite-changes';
import type { Tx } from './sqlite-statements';

/** A refund names no payment: link it by the shared id base, else by merchant reference. */
export function findRefundedPayment(tx: Tx, observation: RefundObservation): Payment | undefined {
  const byBase = tx.stmt.paymentByBase.get({ base: observation.paymentBase });
  if (byBase || observation.merchantReference === null) return byBase;
  return tx.stmt.paymentByMerchantReference.get({ merchantReference: observation.merchantReference });
}

/** Applies a refund's status to its row by the same ordering rule as payments. */
export function upsertRefund(
  tx: Tx,
  observation: RefundObservation,
  paymentId: string | null,
  at: number,
): { decision: Decision; paymentId: string | null } {
  const held = tx.stmt.refundById.get({ id: observation.refundId });
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
    tx.stmt.updateRefund(held, { ...held, ...status });
  } else {
    tx.stmt.insertRefund.run({
      id: observation.refundId,
      paymentBase: observation.paymentBase,
      merchantReference: observation.merchantReference,
      amount: observation.amount,
      currency: observation.currency,
      ...status,
    });
  }
  return { decision, paymentId: linkedTo };
}

/**
 * The refunded total is a sum over refund rows (never an increment), so two refunds with equal amounts both
 * count and a re-delivered refund never counts twice. Returns the row changed in memory (as is when the total
 * holds); the caller saves it.
 */
export function recomputeRefundedTotal(
  tx: Tx,
  payment: Payment,
  at: number,
  eventSeq: number | null,
  cause: string,
): Payment {
  const total = Number(tx.stmt.refundedTotal.get({ paymentId: payment.id })?.total ?? 0);
  if (total === payment.refundedTotal) return payment;
  recordFactChange(tx, payment, {
    kind: 'refund',
    cause: `${cause}; refunded total ${payment.refundedTotal} → ${total}`,
    eventSeq,
    at,
  });
  return { ...payment, refundedTotal: total, updatedAt: at };
}

/**
 * Refunds that arrived before their payment: those waiting for any payment, and those a merchant-reference
 * fallback gave to another attempt of the same order. A refund belongs to the payment of its own id base.
 * `payment` must already be saved (the refunds point at it); it is returned with its refunded total, unsaved.
 */
export function linkWaitingRefunds(tx: Tx, payment: Payment, at: number): Payment {
  const base = paymentBaseOf(payment.id);
  const toLink = tx.stmt.refundsByBase
    .all({ base })
    .filter((refund) => refund.previous === null || paymentBaseOf(refund.previous) !== base);
  if (toLink.length === 0) return payment;
  const ids = toLink.map((refund) => refund.id);
  tx.db.update(refunds).set({ paymentId: payment.id }).where(inArray(refunds.id, ids)).run();
  tx.db.update(events).set({ paymentId: payment.id }).where(inArray(events.refundId, ids)).run();
  const previous = new Set(toLink.map((refund) => refund.previous).filter((id) => id !== null));
  for (const otherId of previous) {
    const other = tx.stmt.paymentById.get({ id: otherId });
    if (!other) continue;
    const cause = `refund(s) moved to ${payment.id}, their own id base`;
    const recomputed = recomputeRefundedTotal(tx, other, at, null, cause);
    savePayment(tx, other, recomputed);
  }
  return recomputeRefundedTotal(tx, payment, at, null, `linked ${ids.length} refund(s) that arrived first`);
}

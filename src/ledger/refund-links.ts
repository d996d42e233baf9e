import { decide, type Decision } from './decide';
import type { Payment } from './ledger';
import { paymentBaseOf, type RefundObservation } from './observation';
import { recordFactChange, savePayment } from './changes';
import { call, type Effect } from './store';

/** A refund names no payment: link it by the shared id base, else by merchant reference. */
export function* findRefundedPayment(observation: RefundObservation): Effect<Payment | undefined> {
  const byBase = yield* call('paymentByBase', observation.paymentBase);
  if (byBase || observation.merchantReference === null) return byBase;
  return yield* call('paymentByMerchantReference', observation.merchantReference);
}

/** Applies a refund's status to its row by the same ordering rule as payments. */
export function* upsertRefund(
  observation: RefundObservation,
  paymentId: string | null,
  at: number,
): Effect<{ decision: Decision; paymentId: string | null }> {
  const held = yield* call('refundById', observation.refundId);
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
    yield* call('updateRefund', held, { ...held, ...status });
  } else {
    yield* call('insertRefund', {
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
export function* recomputeRefundedTotal(
  payment: Payment,
  at: number,
  eventSeq: number | null,
  cause: string,
): Effect<Payment> {
  const total = yield* call('refundedTotal', payment.id);
  if (total === payment.refundedTotal) return payment;
  yield* recordFactChange(payment, {
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
export function* linkWaitingRefunds(payment: Payment, at: number): Effect<Payment> {
  const base = paymentBaseOf(payment.id);
  const toLink = (yield* call('refundsByBase', base)).filter(
    (refund) => refund.previous === null || paymentBaseOf(refund.previous) !== base,
  );
  if (toLink.length === 0) return payment;
  const ids = toLink.map((refund) => refund.id);
  yield* call('linkRefunds', ids, payment.id);
  const previous = new Set(toLink.map((refund) => refund.previous).filter((id) => id !== null));
  for (const otherId of previous) {
    const other = yield* call('paymentById', otherId);
    if (!other) continue;
    const cause = `refund(s) moved to ${payment.id}, their own id base`;
    const recomputed = yield* recomputeRefundedTotal(other, at, null, cause);
    yield* savePayment(other, recomputed);
  }
  return yield* recomputeRefundedTotal(
    payment,
    at,
    null,
    `linked ${ids.length} refund(s) that arrived first`,
  );
}

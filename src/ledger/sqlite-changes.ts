import type { CheckPolicy } from './check-schedule';
import { REVERSING_STAGES } from './fulfilment';
import type { Payment } from './ledger';
import { withNextCheck, type NextCheckOptions } from './payment-row';
import type { stateChanges, ChangeKind } from './schema';
import type { Tx } from './sqlite-statements';

type ChangeRow = Omit<typeof stateChanges.$inferInsert, 'seq'> & { kind: ChangeKind };

/** Every change of a payment goes on the feed through here. */
export function recordChange(tx: Tx, change: ChangeRow): void {
  tx.stmt.insertChange.run({
    ...change,
    eventSeq: change.eventSeq ?? null,
    fromStage: change.fromStage ?? null,
    fromStatusCode: change.fromStatusCode ?? null,
    toStatusCode: change.toStatusCode ?? null,
  });
}

/** A change that leaves stage and statusCode as they are (a total, a fulfilment fact). */
export function recordFactChange(
  tx: Tx,
  payment: Payment,
  change: { kind: ChangeKind; cause: string; eventSeq?: number | null; at: number },
): void {
  recordChange(tx, {
    paymentId: payment.id,
    eventSeq: change.eventSeq ?? null,
    kind: change.kind,
    fromStage: payment.stage,
    toStage: payment.stage,
    fromStatusCode: payment.statusCode,
    toStatusCode: payment.statusCode,
    cause: change.cause,
    at: change.at,
  });
}

/** Writes a payment row read in this transaction (`before`) and changed in memory (`after`). */
export function savePayment(tx: Tx, before: Payment, after: Payment): void {
  if (after !== before) tx.stmt.updatePayment(before, after);
}

export function insertPayment(tx: Tx, payment: Payment): void {
  tx.stmt.insertPayment.run(payment);
}

/*
 * The functions below take the payment row as this transaction holds it and return it changed in memory (a
 * new object; an unchanged row is returned as is), recording the fact on the change feed. The caller saves
 * the row once, after the last of them.
 */

/**
 * Released goods whose payment then moves to refunded, cancelled or reversed (or has money refunded) need a
 * human: flag the payment once and put the fact on the change feed.
 */
export function flagReversalAfterRelease(
  tx: Tx,
  payment: Payment,
  eventSeq: number | null,
  at: number,
): Payment {
  if (payment.releasedAt === null || payment.reversedAfterRelease) return payment;
  if (!REVERSING_STAGES.includes(payment.stage) && payment.refundedTotal === 0) return payment;
  recordFactChange(tx, payment, {
    kind: 'reversed_after_release',
    cause: `released goods, payment now ${payment.stage} (refunded total ${payment.refundedTotal})`,
    eventSeq,
    at,
  });
  return { ...payment, reversedAfterRelease: true, updatedAt: at };
}

const statusOf = (p: Payment | undefined) =>
  JSON.stringify(
    p
      ? {
          statusCode: p.statusCode,
          stage: p.stage,
          capturedTotal: p.capturedTotal,
          refundedTotal: p.refundedTotal,
        }
      : null,
  );

/** What a poll found that no webhook had said, with both views. */
export function recordDrift(
  tx: Tx,
  drift: { eventSeq: number; before: Payment | undefined; after: Payment; summary: string; at: number },
): void {
  tx.stmt.insertDrift.run({
    paymentId: drift.after.id,
    eventSeq: drift.eventSeq,
    ledgerView: statusOf(drift.before),
    platformView: statusOf(drift.after),
    summary: drift.summary,
    at: drift.at,
  });
}

/** The reconciler gave up on the payment (see withNextCheck): a human must look. */
export function recordGivenUp(tx: Tx, payment: Payment, at: number): void {
  recordFactChange(tx, payment, {
    kind: 'stale',
    cause: `no conclusive status after ${payment.checkAttempts} checks: given up, needs a human`,
    at,
  });
}

/** withNextCheck, with the fact on the change feed when the payment was just given up. */
export function scheduleNextCheck(
  tx: Tx,
  payment: Payment,
  at: number,
  policy: CheckPolicy,
  options: NextCheckOptions = {},
): { payment: Payment; stale: boolean } {
  const scheduled = withNextCheck(payment, at, policy, options);
  if (scheduled.stale) recordGivenUp(tx, scheduled.payment, at);
  return scheduled;
}

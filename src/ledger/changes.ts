import type { CheckPolicy } from './check-schedule';
import { REVERSING_STAGES } from './fulfilment';
import type { Payment } from './ledger';
import { withNextCheck, type NextCheckOptions } from './payment-row';
import type { ChangeKind } from './schema';
import { call, type ChangeColumns, type Effect } from './store';

type ChangeRow = ChangeColumns & { kind: ChangeKind };

/** Every change of a payment goes on the feed through here. */
export function* recordChange(change: ChangeRow): Effect<void> {
  yield* call('insertChange', {
    ...change,
    eventSeq: change.eventSeq ?? null,
    fromStage: change.fromStage ?? null,
    fromStatusCode: change.fromStatusCode ?? null,
    toStatusCode: change.toStatusCode ?? null,
  });
}

/** A change that leaves stage and statusCode as they are (a total, a fulfilment fact). */
export function* recordFactChange(
  payment: Payment,
  change: { kind: ChangeKind; cause: string; eventSeq?: number | null; at: number },
): Effect<void> {
  yield* recordChange({
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
export function* savePayment(before: Payment, after: Payment): Effect<void> {
  if (after !== before) yield* call('updatePayment', before, after);
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
export function* flagReversalAfterRelease(
  payment: Payment,
  eventSeq: number | null,
  at: number,
): Effect<Payment> {
  if (payment.releasedAt === null || payment.reversedAfterRelease) return payment;
  if (!REVERSING_STAGES.includes(payment.stage) && payment.refundedTotal === 0) return payment;
  yield* recordFactChange(payment, {
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
export function* recordDrift(drift: {
  eventSeq: number;
  before: Payment | undefined;
  after: Payment;
  summary: string;
  at: number;
}): Effect<void> {
  yield* call('insertDrift', {
    paymentId: drift.after.id,
    eventSeq: drift.eventSeq,
    ledgerView: statusOf(drift.before),
    platformView: statusOf(drift.after),
    summary: drift.summary,
    at: drift.at,
  });
}

/** The reconciler gave up on the payment (see withNextCheck): a human must look. */
export function* recordGivenUp(payment: Payment, at: number): Effect<void> {
  yield* recordFactChange(payment, {
    kind: 'stale',
    cause: `no conclusive status after ${payment.checkAttempts} checks: given up, needs a human`,
    at,
  });
}

/** withNextCheck, with the fact on the change feed when the payment was just given up. */
export function* scheduleNextCheck(
  payment: Payment,
  at: number,
  policy: CheckPolicy,
  options: NextCheckOptions = {},
): Effect<{ payment: Payment; stale: boolean }> {
  const scheduled = withNextCheck(payment, at, policy, options);
  if (scheduled.stale) yield* recordGivenUp(scheduled.payment, at);
  return scheduled;
}

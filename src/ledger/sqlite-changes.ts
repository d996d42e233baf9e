import { eq } from 'drizzle-orm';
import { planNextCheck, type CheckPolicy } from './check-schedule';
import { REVERSING_STAGES } from './fulfilment';
import type { Payment } from './ledger';
import { drifts, payments, stateChanges, type ChangeKind } from './schema';
import type { Db } from './sqlite-events';

type ChangeRow = typeof stateChanges.$inferInsert & { kind: ChangeKind };

/** Every change of a payment goes on the feed through here. */
export function recordChange(tx: Db, change: ChangeRow): void {
  tx.insert(stateChanges).values(change).run();
}

/** A change that leaves stage and statusCode as they are (a total, a fulfilment fact). */
export function recordFactChange(
  tx: Db,
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

/**
 * Released goods whose payment then moves to refunded, cancelled or reversed (or has money refunded) need a
 * human: flag the payment once and put the fact on the change feed.
 */
export function flagReversalAfterRelease(
  tx: Db,
  paymentId: string,
  eventSeq: number | null,
  at: number,
): boolean {
  const payment = tx.select().from(payments).where(eq(payments.id, paymentId)).get();
  if (!payment || payment.releasedAt === null || payment.reversedAfterRelease) return false;
  if (!REVERSING_STAGES.includes(payment.stage) && payment.refundedTotal === 0) return false;
  tx.update(payments)
    .set({ reversedAfterRelease: true, updatedAt: at })
    .where(eq(payments.id, paymentId))
    .run();
  recordFactChange(tx, payment, {
    kind: 'reversed_after_release',
    cause: `released goods, payment now ${payment.stage} (refunded total ${payment.refundedTotal})`,
    eventSeq,
    at,
  });
  return true;
}

/** What a poll found that no webhook had said, with both views. */
export function recordDrift(
  tx: Db,
  drift: { paymentId: string; eventSeq: number; before: Payment | undefined; summary: string; at: number },
): void {
  const after = tx.select().from(payments).where(eq(payments.id, drift.paymentId)).get();
  const view = (p: Payment | undefined) =>
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
  tx.insert(drifts)
    .values({
      paymentId: drift.paymentId,
      eventSeq: drift.eventSeq,
      ledgerView: view(drift.before),
      platformView: view(after),
      summary: drift.summary,
      at: drift.at,
    })
    .run();
}

/**
 * Keeps nextCheckAt in step with the payment after every write: the sweep then reads only due rows. A poll
 * climbs the ladder one step; a conclusive status resets it. Returns true when the payment was just given up.
 */
export function scheduleNextCheck(
  tx: Db,
  paymentId: string,
  at: number,
  policy: CheckPolicy,
  options: { polled?: boolean; refundEvent?: boolean } = {},
): boolean {
  const payment = tx.select().from(payments).where(eq(payments.id, paymentId)).get();
  if (!payment) return false;
  const checkAttempts = payment.checkAttempts + (options.polled ? 1 : 0);
  const plan = planNextCheck({ ...payment, checkAttempts }, at, policy, { refundEvent: options.refundEvent });
  const conclusive = plan.nextCheckAt === null && !plan.stale;
  tx.update(payments)
    .set({
      nextCheckAt: plan.nextCheckAt,
      checkAttempts: conclusive ? 0 : checkAttempts,
      ...(plan.stale ? { staleAt: at } : {}),
    })
    .where(eq(payments.id, paymentId))
    .run();
  if (plan.stale) {
    recordFactChange(tx, payment, {
      kind: 'stale',
      cause: `no conclusive status after ${checkAttempts} checks: given up, needs a human`,
      at,
    });
  }
  return plan.stale;
}

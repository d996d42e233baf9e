import type { CheckPolicy } from './check-schedule';
import { decide, type Decision } from './decide';
import type { ApplyInput, ApplyResult, EventRecord, Payment } from './ledger';
import type { PaymentObservation, RefundObservation } from './observation';
import { paymentAfter, withNextCheck } from './payment-row';
import type { EventOutcome } from './schema';
import {
  flagReversalAfterRelease,
  insertPayment,
  recordChange,
  recordDrift,
  recordFactChange,
  recordGivenUp,
  savePayment,
  scheduleNextCheck,
} from './sqlite-changes';
import { writeEvent } from './sqlite-events';
import type { Tx } from './sqlite-statements';
import {
  findRefundedPayment,
  linkWaitingRefunds,
  recomputeRefundedTotal,
  upsertRefund,
} from './sqlite-refunds';
import { STATUS_CODES } from './status-table';

export type { Db } from './sqlite-events';
export type { Tx } from './sqlite-statements';

/** Events in these outcomes may be processed again under the same envelope id (retry after a fix). */
const RETRYABLE_OUTCOMES: readonly EventOutcome[] = ['invalid', 'failed'];

const NOTHING_CHANGED = { stateChanged: false, reversedAfterRelease: false, stale: false } as const;

/**
 * The dedupe gate, then the decision, then the writes — in one IMMEDIATE transaction, so two workers can never
 * both pass the gate for the same envelope id or interleave on one payment.
 */
export function applyInTransaction(tx: Tx, input: ApplyInput, at: number, policy: CheckPolicy): ApplyResult {
  const { event, reading } = input;
  const existing = tx.stmt.eventById.get({ eventId: event.eventId });
  if (existing && !RETRYABLE_OUTCOMES.includes(existing.outcome)) {
    tx.stmt.countDelivery.run({ seq: existing.seq });
    return {
      outcome: 'duplicate',
      paymentId: existing.paymentId,
      ...NOTHING_CHANGED,
      reason: 'event id already recorded',
    };
  }
  const existingSeq = existing?.seq ?? null;

  if (reading.kind !== 'observation') {
    const outcome = reading.kind === 'ignored' ? 'ignored' : 'invalid';
    writeEvent(tx, event, { outcome, reason: reading.reason, paymentId: null }, at, existingSeq);
    return { outcome, paymentId: null, ...NOTHING_CHANGED, reason: reading.reason };
  }
  const observation = reading.observation;
  return observation.kind === 'payment'
    ? applyPayment(tx, event, observation, at, existingSeq, policy)
    : applyRefund(tx, event, observation, at, existingSeq, policy);
}

/** An unknown code keeps its own outcome, applied or not, so that it is always counted. */
function outcomeOf(decision: Decision, statusCode: number): ApplyResult['outcome'] {
  if (STATUS_CODES[statusCode] === undefined) return 'unknown_code';
  return decision.verdict === 'apply' ? 'applied' : decision.verdict;
}

/**
 * The payment row is read once, changed in memory and written once at the end (a new payment is inserted first:
 * its refunds and state changes point at it). The next check depends only on the status, so when the status
 * decides it (a status change, or a poll) it is planned here and written with the status.
 */
function applyPayment(
  tx: Tx,
  event: EventRecord,
  observation: PaymentObservation,
  at: number,
  existingSeq: number | null,
  policy: CheckPolicy,
): ApplyResult {
  const paymentId = observation.paymentId;
  const held = tx.stmt.paymentById.get({ id: paymentId });
  const decision = decide(held, observation);
  const outcome = outcomeOf(decision, observation.statusCode);
  const statusChanged =
    decision.verdict === 'apply' &&
    (!held || held.stage !== decision.next.stage || held.statusCode !== observation.statusCode);
  const polled = event.source === 'poll';
  let payment = paymentAfter(held, observation, decision, event.source, at);
  let stale = false;
  // A duplicate or superseded webhook says nothing new: the schedule stays as it is. A poll always counts.
  if (statusChanged || polled) ({ payment, stale } = withNextCheck(payment, at, policy, { polled }));
  const saved = held ?? payment;
  if (!held) {
    insertPayment(tx, payment);
    payment = linkWaitingRefunds(tx, payment, at);
  }
  const { reason } = decision;
  const { statusCode, changeTime } = observation;
  const eventSeq = writeEvent(
    tx,
    event,
    { outcome, reason, paymentId, statusCode, changeTime },
    at,
    existingSeq,
  );
  if (statusChanged) recordStatusChange(tx, { held, payment, event, reason, eventSeq, at });
  const operated = applyOperations(tx, payment, observation, eventSeq, at);
  const stateChanged = statusChanged || operated !== payment;
  if (polled && stateChanged) {
    const summary = `poll found what no webhook said: ${reason}`;
    recordDrift(tx, { eventSeq, before: held, after: operated, summary, at });
  }
  payment = stateChanged ? flagReversalAfterRelease(tx, operated, eventSeq, at) : operated;
  const reversedAfterRelease = payment !== operated;
  // Totals changed by Operations outside a poll and without a status change (a replayed poll): plan it now.
  if (stateChanged && !statusChanged && !polled) ({ payment, stale } = withNextCheck(payment, at, policy));
  if (stale) recordGivenUp(tx, payment, at);
  savePayment(tx, saved, payment);
  return { outcome, paymentId, stateChanged, reversedAfterRelease, stale, reason };
}

function recordStatusChange(
  tx: Tx,
  change: {
    held: Payment | undefined;
    payment: Payment;
    event: EventRecord;
    reason: string;
    eventSeq: number;
    at: number;
  },
): void {
  const { held, payment, event } = change;
  recordChange(tx, {
    paymentId: payment.id,
    eventSeq: change.eventSeq,
    kind: 'status',
    fromStage: held?.stage ?? null,
    toStage: payment.stage,
    fromStatusCode: held?.statusCode ?? null,
    toStatusCode: payment.statusCode,
    cause: `${event.source} ${event.type ?? 'observation'} ${event.eventId}: ${change.reason}`,
    at: change.at,
  });
}

/** GetPaymentDetails `Operations` are the platform's own totals: they repair missed captures and refunds. */
function applyOperations(
  tx: Tx,
  payment: Payment,
  observation: PaymentObservation,
  eventSeq: number,
  at: number,
): Payment {
  for (const refund of observation.refunds) upsertRefund(tx, refund, payment.id, at);
  if (observation.refunds.length) {
    const cause = 'refunds from GetPaymentDetails Operations';
    payment = recomputeRefundedTotal(tx, payment, at, eventSeq, cause);
  }
  const captured = observation.capturedFromOperations;
  if (captured === null || captured === payment.capturedTotal) return payment;
  recordFactChange(tx, payment, {
    kind: 'status',
    cause: `captured total ${payment.capturedTotal} → ${captured} from GetPaymentDetails Operations`,
    eventSeq,
    at,
  });
  return { ...payment, capturedTotal: captured, updatedAt: at };
}

function applyRefund(
  tx: Tx,
  event: EventRecord,
  observation: RefundObservation,
  at: number,
  existingSeq: number | null,
  policy: CheckPolicy,
): ApplyResult {
  const found = findRefundedPayment(tx, observation);
  const { decision, paymentId } = upsertRefund(tx, observation, found?.id ?? null, at);
  const outcome = outcomeOf(decision, observation.statusCode);
  const eventSeq = writeEvent(
    tx,
    event,
    {
      outcome,
      reason: paymentId
        ? decision.reason
        : `${decision.reason}; payment not known yet, linked when it arrives`,
      paymentId,
      refundId: observation.refundId,
      statusCode: observation.statusCode,
      changeTime: observation.changeTime,
    },
    at,
    existingSeq,
  );
  if (paymentId === null) return { outcome, paymentId, ...NOTHING_CHANGED, reason: decision.reason };
  // The refund may be linked to another payment than the one found; the row found is still current.
  const held = found?.id === paymentId ? found : tx.stmt.paymentById.get({ id: paymentId });
  if (!held) return { outcome, paymentId, ...NOTHING_CHANGED, reason: decision.reason };
  const cause = `refund ${observation.refundId}: ${decision.reason}`;
  const payment = recomputeRefundedTotal(tx, held, at, eventSeq, cause);
  const stateChanged = payment !== held;
  const flagged = stateChanged ? flagReversalAfterRelease(tx, payment, eventSeq, at) : payment;
  // Partial refunds are only reliably totalled from Operations: ask the platform soon.
  const refundEvent = decision.verdict === 'apply';
  const { payment: scheduled, stale } = scheduleNextCheck(tx, flagged, at, policy, { refundEvent });
  savePayment(tx, held, scheduled);
  const reversedAfterRelease = flagged !== payment;
  return { outcome, paymentId, stateChanged, reversedAfterRelease, stale, reason: decision.reason };
}

/** A poll the platform answered 404: recorded on the payment's timeline, and the ladder climbs on. */
export function recordPollMissInTransaction(
  tx: Tx,
  paymentId: string,
  reason: string,
  at: number,
  policy: CheckPolicy,
): { stale: boolean } {
  const payment = tx.stmt.paymentById.get({ id: paymentId });
  if (!payment) return { stale: false };
  const event: EventRecord = {
    eventId: `poll-miss-${paymentId}-${payment.checkAttempts + 1}-${at}`,
    source: 'poll',
    type: 'payment.details',
    keyId: null,
    signature: null,
    rawBody: null,
    rawIndex: null,
    receivedAt: at,
  };
  writeEvent(tx, event, { outcome: 'ignored', reason, paymentId }, at, null);
  const { payment: scheduled, stale } = scheduleNextCheck(tx, payment, at, policy, { polled: true });
  savePayment(tx, payment, scheduled);
  return { stale };
}

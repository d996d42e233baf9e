import type { CheckPolicy } from './check-schedule';
import { decide, type Decision } from './decide';
import type { ApplyInput, ApplyResult, EventRecord, Payment } from './ledger';
import type { PaymentObservation, RefundObservation } from './observation';
import { paymentAfter, withNextCheck } from './payment-row';
import type { EventOutcome } from './schema';
import {
  flagReversalAfterRelease,
  recordChange,
  recordDrift,
  recordFactChange,
  recordGivenUp,
  savePayment,
  scheduleNextCheck,
} from './changes';
import { writeEvent } from './event-row';
import {
  findRefundedPayment,
  linkWaitingRefunds,
  recomputeRefundedTotal,
  upsertRefund,
} from './refund-links';
import { STATUS_CODES } from './status-table';
import { call, type Effect } from './store';

/** Events in these outcomes may be processed again under the same envelope id (retry after a fix). */
const RETRYABLE_OUTCOMES: readonly EventOutcome[] = ['invalid', 'failed'];

const NOTHING_CHANGED = { stateChanged: false, reversedAfterRelease: false, stale: false } as const;

/**
 * The dedupe gate, then the decision, then the writes. The caller runs it in one transaction that serialises
 * writers of the same payment (SQLite: IMMEDIATE; PostgreSQL: a lock on the payment's id base), so two workers
 * can never both pass the gate for the same envelope id or interleave on one payment.
 */
export function* applyEvent(input: ApplyInput, at: number, policy: CheckPolicy): Effect<ApplyResult> {
  const { event, reading } = input;
  const existing = yield* call('eventById', event.eventId);
  if (existing && !RETRYABLE_OUTCOMES.includes(existing.outcome)) {
    yield* call('countDelivery', existing.seq);
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
    yield* writeEvent(event, { outcome, reason: reading.reason, paymentId: null }, at, existingSeq);
    return { outcome, paymentId: null, ...NOTHING_CHANGED, reason: reading.reason };
  }
  const observation = reading.observation;
  return observation.kind === 'payment'
    ? yield* applyPayment(event, observation, at, existingSeq, policy)
    : yield* applyRefund(event, observation, at, existingSeq, policy);
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
function* applyPayment(
  event: EventRecord,
  observation: PaymentObservation,
  at: number,
  existingSeq: number | null,
  policy: CheckPolicy,
): Effect<ApplyResult> {
  const paymentId = observation.paymentId;
  const held = yield* call('paymentById', paymentId);
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
    yield* call('insertPayment', payment);
    payment = yield* linkWaitingRefunds(payment, at);
  }
  const { reason } = decision;
  const { statusCode, changeTime } = observation;
  const eventSeq = yield* writeEvent(
    event,
    { outcome, reason, paymentId, statusCode, changeTime },
    at,
    existingSeq,
  );
  if (statusChanged) yield* recordStatusChange({ held, payment, event, reason, eventSeq, at });
  const operated = yield* applyOperations(payment, observation, eventSeq, at);
  const stateChanged = statusChanged || operated !== payment;
  if (polled && stateChanged) {
    const summary = `poll found what no webhook said: ${reason}`;
    yield* recordDrift({ eventSeq, before: held, after: operated, summary, at });
  }
  payment = stateChanged ? yield* flagReversalAfterRelease(operated, eventSeq, at) : operated;
  const reversedAfterRelease = payment !== operated;
  // Totals changed by Operations outside a poll and without a status change (a replayed poll): plan it now.
  if (stateChanged && !statusChanged && !polled) ({ payment, stale } = withNextCheck(payment, at, policy));
  if (stale) yield* recordGivenUp(payment, at);
  yield* savePayment(saved, payment);
  return { outcome, paymentId, stateChanged, reversedAfterRelease, stale, reason };
}

function* recordStatusChange(change: {
  held: Payment | undefined;
  payment: Payment;
  event: EventRecord;
  reason: string;
  eventSeq: number;
  at: number;
}): Effect<void> {
  const { held, payment, event } = change;
  yield* recordChange({
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
function* applyOperations(
  payment: Payment,
  observation: PaymentObservation,
  eventSeq: number,
  at: number,
): Effect<Payment> {
  for (const refund of observation.refunds) yield* upsertRefund(refund, payment.id, at);
  if (observation.refunds.length) {
    const cause = 'refunds from GetPaymentDetails Operations';
    payment = yield* recomputeRefundedTotal(payment, at, eventSeq, cause);
  }
  const captured = observation.capturedFromOperations;
  if (captured === null || captured === payment.capturedTotal) return payment;
  yield* recordFactChange(payment, {
    kind: 'status',
    cause: `captured total ${payment.capturedTotal} → ${captured} from GetPaymentDetails Operations`,
    eventSeq,
    at,
  });
  return { ...payment, capturedTotal: captured, updatedAt: at };
}

function* applyRefund(
  event: EventRecord,
  observation: RefundObservation,
  at: number,
  existingSeq: number | null,
  policy: CheckPolicy,
): Effect<ApplyResult> {
  const found = yield* findRefundedPayment(observation);
  const { decision, paymentId } = yield* upsertRefund(observation, found?.id ?? null, at);
  const outcome = outcomeOf(decision, observation.statusCode);
  const eventSeq = yield* writeEvent(
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
  const held = found?.id === paymentId ? found : yield* call('paymentById', paymentId);
  if (!held) return { outcome, paymentId, ...NOTHING_CHANGED, reason: decision.reason };
  const cause = `refund ${observation.refundId}: ${decision.reason}`;
  const payment = yield* recomputeRefundedTotal(held, at, eventSeq, cause);
  const stateChanged = payment !== held;
  const flagged = stateChanged ? yield* flagReversalAfterRelease(payment, eventSeq, at) : payment;
  // Partial refunds are only reliably totalled from Operations: ask the platform soon.
  const refundEvent = decision.verdict === 'apply';
  const { payment: scheduled, stale } = yield* scheduleNextCheck(flagged, at, policy, { refundEvent });
  yield* savePayment(held, scheduled);
  const reversedAfterRelease = flagged !== payment;
  return { outcome, paymentId, stateChanged, reversedAfterRelease, stale, reason: decision.reason };
}

/** A poll the platform answered 404: recorded on the payment's timeline, and the ladder climbs on. */
export function* recordPollMiss(
  paymentId: string,
  reason: string,
  at: number,
  policy: CheckPolicy,
): Effect<{ stale: boolean }> {
  const payment = yield* call('paymentById', paymentId);
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
  yield* writeEvent(event, { outcome: 'ignored', reason, paymentId }, at, null);
  const { payment: scheduled, stale } = yield* scheduleNextCheck(payment, at, policy, { polled: true });
  yield* savePayment(payment, scheduled);
  return { stale };
}

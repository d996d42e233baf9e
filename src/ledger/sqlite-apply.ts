import { eq, sql } from 'drizzle-orm';
import type { CheckPolicy } from './check-schedule';
import { decide, type Decision } from './decide';
import type { ApplyInput, ApplyResult, EventRecord, Payment } from './ledger';
import { paymentBaseOf, type PaymentObservation, type RefundObservation } from './observation';
import { events, payments, type EventOutcome } from './schema';
import {
  flagReversalAfterRelease,
  recordChange,
  recordDrift,
  recordFactChange,
  scheduleNextCheck,
} from './sqlite-changes';
import { writeEvent, type Db } from './sqlite-events';
import {
  findRefundedPayment,
  linkWaitingRefunds,
  recomputeRefundedTotal,
  upsertRefund,
} from './sqlite-refunds';
import { STATUS_CODES, type Stage } from './status-table';

export type { Db } from './sqlite-events';

/** Stages past a capture: they imply one, even when the capture event itself arrives late and is superseded. */
const CAPTURED_LINE: readonly Stage[] = [
  'captured',
  'deletion_pending',
  'refund_pending',
  'refunded',
  'reversed',
];

/** Events in these outcomes may be processed again under the same envelope id (retry after a fix). */
const RETRYABLE_OUTCOMES: readonly EventOutcome[] = ['invalid', 'failed'];

const NOTHING_CHANGED = { stateChanged: false, reversedAfterRelease: false, stale: false } as const;

/**
 * The dedupe gate, then the decision, then the writes — in one IMMEDIATE transaction, so two workers can never
 * both pass the gate for the same envelope id or interleave on one payment.
 */
export function applyInTransaction(tx: Db, input: ApplyInput, at: number, policy: CheckPolicy): ApplyResult {
  const { event, reading } = input;
  const existing = tx
    .select({ outcome: events.outcome, paymentId: events.paymentId })
    .from(events)
    .where(eq(events.eventId, event.eventId))
    .get();
  if (existing && !RETRYABLE_OUTCOMES.includes(existing.outcome)) {
    tx.update(events)
      .set({ deliveries: sql`${events.deliveries} + 1` })
      .where(eq(events.eventId, event.eventId))
      .run();
    return {
      outcome: 'duplicate',
      paymentId: existing.paymentId,
      ...NOTHING_CHANGED,
      reason: 'event id already recorded',
    };
  }
  const exists = existing !== undefined;

  if (reading.kind !== 'observation') {
    const outcome = reading.kind === 'ignored' ? 'ignored' : 'invalid';
    writeEvent(tx, event, { outcome, reason: reading.reason, paymentId: null }, at, exists);
    return { outcome, paymentId: null, ...NOTHING_CHANGED, reason: reading.reason };
  }
  const observation = reading.observation;
  return observation.kind === 'payment'
    ? applyPayment(tx, event, observation, at, exists, policy)
    : applyRefund(tx, event, observation, at, exists, policy);
}

/** An unknown code keeps its own outcome, applied or not, so that it is always counted. */
function outcomeOf(decision: Decision, statusCode: number): ApplyResult['outcome'] {
  if (STATUS_CODES[statusCode] === undefined) return 'unknown_code';
  return decision.verdict === 'apply' ? 'applied' : decision.verdict;
}

function writeStatus(
  tx: Db,
  held: Payment | undefined,
  observation: PaymentObservation,
  decision: Decision,
  source: EventRecord['source'],
  at: number,
) {
  if (decision.verdict !== 'apply') {
    const fill = held ? missingDescriptiveFields(held, observation) : {};
    if (held && Object.keys(fill).length) tx.update(payments).set(fill).where(eq(payments.id, held.id)).run();
    return;
  }
  const next = decision.next;
  const reachesCapture = CAPTURED_LINE.includes(next.stage) && (held?.capturedTotal ?? 0) === 0;
  const status = {
    statusCode: observation.statusCode,
    status: observation.status,
    statusCategory: observation.statusCategory,
    stage: next.stage,
    rank: next.rank,
    uncertain: next.uncertain,
    isAuthorized: observation.isAuthorized,
    isCancellable: observation.isCancellable,
    isRefundable: observation.isRefundable,
    errorsJson: observation.errorsJson,
    changeTime: observation.changeTime,
    lastSource: source,
    updatedAt: at,
    ...(reachesCapture ? { capturedTotal: observation.acquiredAmount ?? observation.amount ?? 0 } : {}),
  };
  if (held) {
    tx.update(payments)
      .set({ ...status, ...missingDescriptiveFields(held, observation) })
      .where(eq(payments.id, held.id))
      .run();
    return;
  }
  tx.insert(payments)
    .values({
      id: observation.paymentId,
      base: paymentBaseOf(observation.paymentId),
      merchantReference: observation.merchantReference,
      amount: observation.amount,
      currency: observation.currency,
      firstSeenAt: at,
      ...status,
    })
    .run();
  linkWaitingRefunds(tx, observation.paymentId, at);
}

function applyPayment(
  tx: Db,
  event: EventRecord,
  observation: PaymentObservation,
  at: number,
  eventExists: boolean,
  policy: CheckPolicy,
): ApplyResult {
  const paymentId = observation.paymentId;
  const held = tx.select().from(payments).where(eq(payments.id, paymentId)).get();
  const decision = decide(held, observation);
  const outcome = outcomeOf(decision, observation.statusCode);
  writeStatus(tx, held, observation, decision, event.source, at);
  const statusChanged =
    decision.verdict === 'apply' &&
    (!held || held.stage !== decision.next.stage || held.statusCode !== observation.statusCode);

  const eventSeq = writeEvent(
    tx,
    event,
    {
      outcome,
      reason: decision.reason,
      paymentId,
      statusCode: observation.statusCode,
      changeTime: observation.changeTime,
    },
    at,
    eventExists,
  );
  if (statusChanged && decision.verdict === 'apply') {
    recordChange(tx, {
      paymentId,
      eventSeq,
      kind: 'status',
      fromStage: held?.stage ?? null,
      toStage: decision.next.stage,
      fromStatusCode: held?.statusCode ?? null,
      toStatusCode: observation.statusCode,
      cause: `${event.source} ${event.type ?? 'observation'} ${event.eventId}: ${decision.reason}`,
      at,
    });
  }
  const totalsChanged = applyOperations(tx, paymentId, observation, eventSeq, at);
  const stateChanged = statusChanged || totalsChanged;
  if (event.source === 'poll' && stateChanged) {
    recordDrift(tx, {
      paymentId,
      eventSeq,
      before: held,
      summary: `poll found what no webhook said: ${decision.reason}`,
      at,
    });
  }
  const reversedAfterRelease = stateChanged && flagReversalAfterRelease(tx, paymentId, eventSeq, at);
  // A duplicate or superseded webhook says nothing new: the schedule stays as it is. A poll always counts.
  const polled = event.source === 'poll';
  const stale = (stateChanged || polled) && scheduleNextCheck(tx, paymentId, at, policy, { polled });
  return { outcome, paymentId, stateChanged, reversedAfterRelease, stale, reason: decision.reason };
}

/** GetPaymentDetails `Operations` are the platform's own totals: they repair missed captures and refunds. */
function applyOperations(
  tx: Db,
  paymentId: string,
  observation: PaymentObservation,
  eventSeq: number,
  at: number,
) {
  let changed = false;
  for (const refund of observation.refunds) upsertRefund(tx, refund, paymentId, at);
  if (observation.refunds.length) {
    changed = recomputeRefundedTotal(
      tx,
      paymentId,
      at,
      eventSeq,
      'refunds from GetPaymentDetails Operations',
    );
  }
  const captured = observation.capturedFromOperations;
  const payment = tx.select().from(payments).where(eq(payments.id, paymentId)).get();
  if (captured !== null && payment && captured !== payment.capturedTotal) {
    tx.update(payments)
      .set({ capturedTotal: captured, updatedAt: at })
      .where(eq(payments.id, paymentId))
      .run();
    recordFactChange(tx, payment, {
      kind: 'status',
      cause: `captured total ${payment.capturedTotal} → ${captured} from GetPaymentDetails Operations`,
      eventSeq,
      at,
    });
    changed = true;
  }
  return changed;
}

/** Descriptive fields never change a payment's standing; take them from any event when the ledger lacks them. */
function missingDescriptiveFields(held: Payment, observation: PaymentObservation): Partial<Payment> {
  const fill: Partial<Payment> = {};
  if (held.merchantReference === null && observation.merchantReference !== null)
    fill.merchantReference = observation.merchantReference;
  if (held.amount === null && observation.amount !== null) fill.amount = observation.amount;
  if (held.currency === null && observation.currency !== null) fill.currency = observation.currency;
  return fill;
}

function applyRefund(
  tx: Db,
  event: EventRecord,
  observation: RefundObservation,
  at: number,
  eventExists: boolean,
  policy: CheckPolicy,
): ApplyResult {
  const payment = findRefundedPayment(tx, observation);
  const { decision, paymentId } = upsertRefund(tx, observation, payment?.id ?? null, at);
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
    eventExists,
  );
  if (paymentId === null) return { outcome, paymentId, ...NOTHING_CHANGED, reason: decision.reason };
  const stateChanged = recomputeRefundedTotal(
    tx,
    paymentId,
    at,
    eventSeq,
    `refund ${observation.refundId}: ${decision.reason}`,
  );
  const reversedAfterRelease = stateChanged && flagReversalAfterRelease(tx, paymentId, eventSeq, at);
  // Partial refunds are only reliably totalled from Operations: ask the platform soon.
  const stale = scheduleNextCheck(tx, paymentId, at, policy, { refundEvent: decision.verdict === 'apply' });
  return { outcome, paymentId, stateChanged, reversedAfterRelease, stale, reason: decision.reason };
}

/** A poll the platform answered 404: recorded on the payment's timeline, and the ladder climbs on. */
export function recordPollMissInTransaction(
  tx: Db,
  paymentId: string,
  reason: string,
  at: number,
  policy: CheckPolicy,
): { stale: boolean } {
  const payment = tx.select().from(payments).where(eq(payments.id, paymentId)).get();
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
  writeEvent(tx, event, { outcome: 'ignored', reason, paymentId }, at, false);
  return { stale: scheduleNextCheck(tx, paymentId, at, policy, { polled: true }) };
}

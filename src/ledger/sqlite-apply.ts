import { and, asc, desc, eq, inArray, sql, sum } from 'drizzle-orm';
import type { BetterSQLite3Database } from 'drizzle-orm/better-sqlite3';
import { decide, type Decision } from './decide';
import { REVERSING_STAGES } from './fulfilment';
import type { ApplyInput, ApplyResult, EventRecord, Payment } from './ledger';
import { paymentBaseOf, type PaymentObservation, type RefundObservation } from './observation';
import { STATUS_CODES, type Stage } from './status-table';
import type * as schema from './schema';
import { events, payments, refunds, stateChanges, type ChangeKind, type EventOutcome } from './schema';

export type Db = BetterSQLite3Database<typeof schema>;

const CAPTURED_LINE: readonly Stage[] = [
  'captured',
  'deletion_pending',
  'refund_pending',
  'refunded',
  'reversed',
];

/** Events in these outcomes may be processed again under the same envelope id (retry after a fix). */
const RETRYABLE_OUTCOMES: readonly EventOutcome[] = ['invalid', 'failed'];

export function eventColumns(event: EventRecord) {
  return {
    eventId: event.eventId,
    source: event.source,
    type: event.type,
    keyId: event.keyId,
    signature: event.signature,
    rawBody: event.rawBody,
    rawIndex: event.rawIndex,
    rawBytes: event.rawBody === null ? null : Buffer.byteLength(event.rawBody),
    receivedAt: event.receivedAt,
  };
}

interface EventResult {
  outcome: EventOutcome;
  reason: string;
  paymentId: string | null;
  refundId?: string | null;
  statusCode?: number | null;
  changeTime?: string | null;
}

/** Inserts the event row, or rewrites a retryable one (invalid/failed) now that it has been processed again. */
function writeEvent(tx: Db, event: EventRecord, result: EventResult, at: number, exists: boolean): number {
  const columns = {
    ...eventColumns(event),
    paymentId: result.paymentId,
    refundId: result.refundId ?? null,
    statusCode: result.statusCode ?? null,
    changeTime: result.changeTime ?? null,
    outcome: result.outcome,
    reason: result.reason,
    processedAt: at,
  };
  const row = exists
    ? tx
        .update(events)
        .set(columns)
        .where(eq(events.eventId, event.eventId))
        .returning({ seq: events.seq })
        .get()
    : tx.insert(events).values(columns).returning({ seq: events.seq }).get();
  if (!row) throw new Error(`event ${event.eventId} could not be written`);
  return row.seq;
}

/**
 * The dedupe gate, then the decision, then the writes — in one IMMEDIATE transaction, so two workers can never
 * both pass the gate for the same envelope id or interleave on one payment.
 */
export function applyInTransaction(tx: Db, input: ApplyInput, at: number): ApplyResult {
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
      stateChanged: false,
      reversedAfterRelease: false,
      reason: 'event id already recorded',
    };
  }
  const exists = existing !== undefined;

  if (reading.kind !== 'observation') {
    const outcome = reading.kind === 'ignored' ? 'ignored' : 'invalid';
    writeEvent(tx, event, { outcome, reason: reading.reason, paymentId: null }, at, exists);
    return {
      outcome,
      paymentId: null,
      stateChanged: false,
      reversedAfterRelease: false,
      reason: reading.reason,
    };
  }
  const observation = reading.observation;
  return observation.kind === 'payment'
    ? applyPayment(tx, event, observation, at, exists)
    : applyRefund(tx, event, observation, at, exists);
}

/** An unknown code keeps its own outcome, applied or not, so that it is always counted. */
function outcomeOf(decision: Decision, statusCode: number): ApplyResult['outcome'] {
  if (STATUS_CODES[statusCode] === undefined) return 'unknown_code';
  return decision.verdict === 'apply' ? 'applied' : decision.verdict;
}

function applyPayment(
  tx: Db,
  event: EventRecord,
  observation: PaymentObservation,
  at: number,
  eventExists: boolean,
): ApplyResult {
  const held = tx.select().from(payments).where(eq(payments.id, observation.paymentId)).get();
  const decision = decide(held, observation);
  const outcome = outcomeOf(decision, observation.statusCode);

  let stateChanged = false;
  if (decision.verdict === 'apply') {
    const next = decision.next;
    // Stages past a capture imply one, even when the capture event itself arrives late and is superseded.
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
      lastSource: event.source,
      updatedAt: at,
      ...(reachesCapture ? { capturedTotal: observation.acquiredAmount ?? observation.amount ?? 0 } : {}),
    };
    if (held) {
      tx.update(payments)
        .set({ ...status, ...missingDescriptiveFields(held, observation) })
        .where(eq(payments.id, held.id))
        .run();
    } else {
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
    stateChanged = !held || held.stage !== next.stage || held.statusCode !== observation.statusCode;
  } else if (held) {
    const fill = missingDescriptiveFields(held, observation);
    if (Object.keys(fill).length) tx.update(payments).set(fill).where(eq(payments.id, held.id)).run();
  }

  const eventSeq = writeEvent(
    tx,
    event,
    {
      outcome,
      reason: decision.reason,
      paymentId: observation.paymentId,
      statusCode: observation.statusCode,
      changeTime: observation.changeTime,
    },
    at,
    eventExists,
  );
  let reversedAfterRelease = false;
  if (stateChanged && decision.verdict === 'apply') {
    recordChange(tx, {
      paymentId: observation.paymentId,
      eventSeq,
      kind: 'status',
      fromStage: held?.stage ?? null,
      toStage: decision.next.stage,
      fromStatusCode: held?.statusCode ?? null,
      toStatusCode: observation.statusCode,
      cause: `${event.source} ${event.type ?? 'observation'} ${event.eventId}: ${decision.reason}`,
      at,
    });
    reversedAfterRelease = flagReversalAfterRelease(tx, observation.paymentId, eventSeq, at);
  }
  return {
    outcome,
    paymentId: observation.paymentId,
    stateChanged,
    reversedAfterRelease,
    reason: decision.reason,
  };
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

/** A refund names no payment: link it by the shared id base, else by merchant reference. */
function findRefundedPayment(tx: Db, observation: RefundObservation): Payment | undefined {
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

function applyRefund(
  tx: Db,
  event: EventRecord,
  observation: RefundObservation,
  at: number,
  eventExists: boolean,
): ApplyResult {
  const payment = findRefundedPayment(tx, observation);
  const held = tx.select().from(refunds).where(eq(refunds.id, observation.refundId)).get();
  const decision = decide(held, observation);
  const outcome = outcomeOf(decision, observation.statusCode);
  const paymentId = payment?.id ?? held?.paymentId ?? null;

  if (decision.verdict === 'apply') {
    const status = {
      paymentId,
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
  }
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
  const stateChanged =
    paymentId !== null &&
    recomputeRefundedTotal(tx, paymentId, at, eventSeq, `refund ${observation.refundId}: ${decision.reason}`);
  const reversedAfterRelease = stateChanged && flagReversalAfterRelease(tx, paymentId, eventSeq, at);
  return { outcome, paymentId, stateChanged, reversedAfterRelease, reason: decision.reason };
}

/**
 * The refunded total is a sum over refund rows (never an increment), so two refunds with equal amounts both
 * count and a re-delivered refund never counts twice.
 */
function recomputeRefundedTotal(
  tx: Db,
  paymentId: string,
  at: number,
  eventSeq: number | null,
  cause: string,
) {
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
  recordChange(tx, {
    paymentId,
    eventSeq,
    kind: 'refund',
    fromStage: payment.stage,
    toStage: payment.stage,
    fromStatusCode: payment.statusCode,
    toStatusCode: payment.statusCode,
    cause: `${cause}; refunded total ${payment.refundedTotal} → ${total}`,
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

type ChangeRow = typeof stateChanges.$inferInsert & { kind: ChangeKind };

/** Every change of a payment goes on the feed through here. */
export function recordChange(tx: Db, change: ChangeRow): void {
  tx.insert(stateChanges).values(change).run();
}

/**
 * Released goods whose payment then moves to refunded, cancelled or reversed (or has money refunded) need a
 * human: flag the payment once and put the fact on the change feed.
 */
function flagReversalAfterRelease(tx: Db, paymentId: string, eventSeq: number | null, at: number): boolean {
  const payment = tx.select().from(payments).where(eq(payments.id, paymentId)).get();
  if (!payment || payment.releasedAt === null || payment.reversedAfterRelease) return false;
  if (!REVERSING_STAGES.includes(payment.stage) && payment.refundedTotal === 0) return false;
  tx.update(payments)
    .set({ reversedAfterRelease: true, updatedAt: at })
    .where(eq(payments.id, paymentId))
    .run();
  recordChange(tx, {
    paymentId,
    eventSeq,
    kind: 'reversed_after_release',
    fromStage: payment.stage,
    toStage: payment.stage,
    fromStatusCode: payment.statusCode,
    toStatusCode: payment.statusCode,
    cause: `released goods, payment now ${payment.stage} (refunded total ${payment.refundedTotal})`,
    at,
  });
  return true;
}

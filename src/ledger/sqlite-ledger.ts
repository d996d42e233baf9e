import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { and, asc, count, desc, eq, inArray, isNotNull, isNull, lt, max, sql, sum } from 'drizzle-orm';
import { drizzle, type BetterSQLite3Database } from 'drizzle-orm/better-sqlite3';
import { migrate } from 'drizzle-orm/better-sqlite3/migrator';
import { decide, type Decision } from './decide';
import type { ApplyInput, ApplyResult, EventRecord, Ledger, Payment, PaymentView } from './ledger';
import { paymentBaseOf, type PaymentObservation, type RefundObservation } from './observation';
import * as schema from './schema';
import { events, payments, refunds, stateChanges, type EventOutcome } from './schema';

type Db = BetterSQLite3Database<typeof schema>;

export interface OpenSqliteLedgerOptions {
  /** File path of the ledger; its folder is created when missing. */
  path: string;
  /**
   * How long a writer waits for another process's write lock before SQLITE_BUSY.
   * @defaultValue 5000
   */
  busyTimeoutMs?: number;
  /** Clock, injectable for tests. */
  now?: () => number;
}

/** Finds drizzle/ from both src/ledger (ts) and dist/src/ledger (built). */
function migrationsFolder(): string {
  for (let dir = __dirname; dir !== path.dirname(dir); dir = path.dirname(dir)) {
    const candidate = path.join(dir, 'drizzle');
    if (fs.existsSync(path.join(candidate, 'meta', '_journal.json'))) return candidate;
  }
  throw new Error(`no drizzle/ migrations folder found above ${__dirname}`);
}

/** Events in these outcomes may be processed again under the same envelope id (retry after a fix). */
const RETRYABLE_OUTCOMES: readonly EventOutcome[] = ['invalid', 'failed'];

export function openSqliteLedger(options: OpenSqliteLedgerOptions): Ledger {
  fs.mkdirSync(path.dirname(path.resolve(options.path)), { recursive: true });
  const sqlite = new Database(options.path);
  sqlite.pragma('journal_mode = WAL');
  sqlite.pragma('synchronous = NORMAL');
  sqlite.pragma('foreign_keys = ON');
  sqlite.pragma(`busy_timeout = ${options.busyTimeoutMs ?? 5000}`);
  const db = drizzle(sqlite, { schema });
  migrate(db, { migrationsFolder: migrationsFolder() });
  const now = options.now ?? Date.now;

  const applySync = (input: ApplyInput): ApplyResult =>
    db.transaction((tx) => applyInTransaction(tx, input, now()), { behavior: 'immediate' });

  return {
    apply: async (input) => applySync(input),
    recordFailedEvent: async (event, error) => {
      const at = now();
      db.insert(events)
        .values({ ...eventColumns(event), outcome: 'failed', reason: error, processedAt: at })
        // An existing row was reached by processing; its outcome stays.
        .onConflictDoNothing({ target: events.eventId })
        .run();
    },
    getPayment: async (paymentId) => getPaymentView(db, paymentId),
    getEvent: async (eventId) => db.select().from(events).where(eq(events.eventId, eventId)).get(),
    listPaymentEvents: async (paymentId) =>
      db.select().from(events).where(eq(events.paymentId, paymentId)).orderBy(asc(events.seq)).all(),
    listStateChanges: async (paymentId) =>
      db
        .select()
        .from(stateChanges)
        .where(eq(stateChanges.paymentId, paymentId))
        .orderBy(asc(stateChanges.seq))
        .all(),
    listRefunds: async (paymentId) =>
      db.select().from(refunds).where(eq(refunds.paymentId, paymentId)).orderBy(asc(refunds.id)).all(),
    purgeRawBodies: async (receivedBefore) =>
      db
        .update(events)
        .set({ rawBody: null })
        .where(and(lt(events.receivedAt, receivedBefore), isNotNull(events.rawBody)))
        .run().changes,
    ping: async () => {
      sqlite.prepare('select 1').get();
    },
    close: async () => {
      sqlite.close();
    },
  };
}

function getPaymentView(db: Db, paymentId: string): PaymentView | undefined {
  const payment = db.select().from(payments).where(eq(payments.id, paymentId)).get();
  if (!payment) return undefined;
  const stats = db
    .select({ eventCount: count(), lastEventAt: max(events.receivedAt) })
    .from(events)
    .where(eq(events.paymentId, paymentId))
    .get();
  return { ...payment, eventCount: stats?.eventCount ?? 0, lastEventAt: stats?.lastEventAt ?? null };
}

function eventColumns(event: EventRecord) {
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
function applyInTransaction(tx: Db, input: ApplyInput, at: number): ApplyResult {
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
      reason: 'event id already recorded',
    };
  }
  const exists = existing !== undefined;

  if (reading.kind !== 'observation') {
    const outcome = reading.kind === 'ignored' ? 'ignored' : 'invalid';
    writeEvent(tx, event, { outcome, reason: reading.reason, paymentId: null }, at, exists);
    return { outcome, paymentId: null, stateChanged: false, reason: reading.reason };
  }
  const observation = reading.observation;
  return observation.kind === 'payment'
    ? applyPayment(tx, event, observation, at, exists)
    : applyRefund(tx, event, observation, at, exists);
}

function outcomeOf(decision: Decision, knownCode: boolean): ApplyResult['outcome'] {
  if (!knownCode) return 'unknown_code';
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
  const knownCode = decision.verdict !== 'apply' || decision.next.stage !== 'unknown';
  const outcome = outcomeOf(decision, knownCode);

  let stateChanged = false;
  if (decision.verdict === 'apply') {
    const next = decision.next;
    const reachesCapture = next.stage === 'captured' && (held?.capturedTotal ?? 0) === 0;
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
  if (stateChanged && decision.verdict === 'apply') {
    tx.insert(stateChanges)
      .values({
        paymentId: observation.paymentId,
        eventSeq,
        fromStage: held?.stage ?? null,
        toStage: decision.next.stage,
        fromStatusCode: held?.statusCode ?? null,
        toStatusCode: observation.statusCode,
        cause: `${event.source} ${event.type ?? 'observation'} ${event.eventId}: ${decision.reason}`,
        at,
      })
      .run();
  }
  return { outcome, paymentId: observation.paymentId, stateChanged, reason: decision.reason };
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
  const knownCode = decision.verdict !== 'apply' || decision.next.stage !== 'unknown';
  const outcome = outcomeOf(decision, knownCode);
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
  return { outcome, paymentId, stateChanged, reason: decision.reason };
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
  tx.insert(stateChanges)
    .values({
      paymentId,
      eventSeq,
      fromStage: payment.stage,
      toStage: payment.stage,
      fromStatusCode: payment.statusCode,
      toStatusCode: payment.statusCode,
      cause: `${cause}; refunded total ${payment.refundedTotal} → ${total}`,
      at,
    })
    .run();
  return true;
}

function linkWaitingRefunds(tx: Db, paymentId: string, at: number) {
  const linked = tx
    .update(refunds)
    .set({ paymentId })
    .where(and(eq(refunds.paymentBase, paymentBaseOf(paymentId)), isNull(refunds.paymentId)))
    .run().changes;
  if (linked === 0) return;
  const linkedRefundIds = tx.select({ id: refunds.id }).from(refunds).where(eq(refunds.paymentId, paymentId));
  tx.update(events)
    .set({ paymentId })
    .where(and(inArray(events.refundId, linkedRefundIds), isNull(events.paymentId)))
    .run();
  recomputeRefundedTotal(tx, paymentId, at, null, `linked ${linked} refund(s) that arrived first`);
}

import os from 'node:os';
import path from 'node:path';
import fs from 'node:fs';
import { and, asc, desc, eq, gt, gte, isNotNull, isNull, lte, type SQL } from 'drizzle-orm';
import type { CheckPolicy } from './check-schedule';
import type {
  EventFilter,
  Ledger,
  OperatorAction,
  OperatorActionInput,
  Payment,
  PaymentStatusView,
  RebuildReport,
  ReplayResult,
  StoredEvent,
} from './ledger';
import { readPaymentDetails, readWebhookEvent, type Reading } from './observation';
import { events, operatorActions, payments } from './schema';
import { applyInTransaction } from './sqlite-apply';
import { recordChange } from './sqlite-changes';
import type { Db } from './sqlite-events';
import type { Tx } from './sqlite-statements';

export function statusView(payment: Payment | undefined): PaymentStatusView | null {
  if (!payment) return null;
  const { statusCode, stage, capturedTotal, refundedTotal, changeTime } = payment;
  return { statusCode, stage, capturedTotal, refundedTotal, changeTime };
}

export function listEventsQuery(db: Db, filter: EventFilter): StoredEvent[] {
  const conditions: SQL[] = [];
  if (filter.outcome) conditions.push(eq(events.outcome, filter.outcome));
  if (filter.type) conditions.push(eq(events.type, filter.type));
  if (filter.paymentId) conditions.push(eq(events.paymentId, filter.paymentId));
  if (filter.source) conditions.push(eq(events.source, filter.source));
  if (filter.since !== undefined) conditions.push(gte(events.receivedAt, filter.since));
  if (filter.until !== undefined) conditions.push(lte(events.receivedAt, filter.until));
  if (filter.afterSeq !== undefined) conditions.push(gt(events.seq, filter.afterSeq));
  return db
    .select()
    .from(events)
    .where(and(...conditions))
    .orderBy(asc(events.seq))
    .limit(filter.limit)
    .all();
}

export function recordActionQuery(db: Db, input: OperatorActionInput, at: number): OperatorAction {
  return db
    .insert(operatorActions)
    .values({
      actor: input.actor,
      reason: input.reason,
      action: input.action,
      target: input.target,
      count: input.count,
      dryRun: input.dryRun,
      detailsJson: input.details === undefined ? null : JSON.stringify(input.details),
      at,
    })
    .returning()
    .get();
}

export function listActionsQuery(db: Db, limit: number): OperatorAction[] {
  return db.select().from(operatorActions).orderBy(desc(operatorActions.id)).limit(limit).all();
}

/** What a stored raw event says, read again exactly as the worker or the poller read it. */
export function readStoredEvent(event: StoredEvent): Reading {
  if (event.rawBody === null) return { kind: 'invalid', reason: 'raw body cleared by retention' };
  let body: unknown;
  try {
    body = JSON.parse(event.rawBody);
  } catch {
    return { kind: 'invalid', reason: 'stored raw body is not JSON' };
  }
  if (event.source === 'poll') return readPaymentDetails(body);
  const item = event.rawIndex === null ? body : (body as unknown[])[event.rawIndex];
  if (!item || typeof item !== 'object')
    return { kind: 'invalid', reason: 'stored raw body does not hold the event' };
  return readWebhookEvent(item as Parameters<typeof readWebhookEvent>[0]);
}

class DryRunRollback extends Error {}

/** Runs `work` in a write transaction; a dry run rolls it back after reading its result. */
export function inTransaction<T>(db: Db, dryRun: boolean, work: (tx: Db) => T): T {
  let result: T | undefined;
  try {
    db.transaction(
      (tx) => {
        result = work(tx);
        if (dryRun) throw new DryRunRollback();
      },
      { behavior: 'immediate' },
    );
  } catch (error) {
    if (!(error instanceof DryRunRollback)) throw error;
  }
  return result as T;
}

export function replayEventQuery(
  { db, stmt }: Tx,
  eventId: string,
  options: { actionId: number | null; dryRun: boolean },
  at: number,
  policy: CheckPolicy,
): ReplayResult {
  const original = db.select().from(events).where(eq(events.eventId, eventId)).get();
  if (!original) return { outcome: 'not_found', eventId };
  if (original.rawBody === null) return { outcome: 'no_raw_body', eventId };
  const replayEventId = `replay-${options.actionId ?? 'dry'}-${eventId}`;
  const reading = readStoredEvent(original);
  const paymentIdOf = () =>
    reading.kind === 'observation' && reading.observation.kind === 'payment'
      ? reading.observation.paymentId
      : original.paymentId;
  return inTransaction(db, options.dryRun, (txDb) => {
    const paymentId = paymentIdOf();
    const current = (id: string | null) => (id ? statusView(stmt.paymentById.get({ id })) : null);
    const before = current(paymentId);
    const result = applyInTransaction(
      { db: txDb, stmt },
      {
        event: {
          eventId: replayEventId,
          source: 'replay',
          type: original.type,
          keyId: original.keyId,
          signature: original.signature,
          rawBody: original.rawBody,
          rawIndex: original.rawIndex,
          receivedAt: at,
          replayOf: eventId,
          actionId: options.actionId,
        },
        reading,
      },
      at,
      policy,
    );
    return {
      outcome: result.outcome,
      eventId,
      replayEventId,
      paymentId: result.paymentId ?? paymentId,
      before,
      after: current(result.paymentId ?? paymentId),
      reason: result.reason,
      dryRun: options.dryRun,
    };
  });
}

/**
 * The consistency check: every stored event with its raw body is applied again, in its original order, to a
 * scratch ledger; payments whose recomputed state differs from the ledger's are listed (and, without a dry
 * run, set to the recomputed state with a state change saying so).
 */
export async function rebuildQuery(
  { db, stmt }: Tx,
  openScratch: (file: string) => Ledger,
  options: { dryRun: boolean },
  at: number,
): Promise<RebuildReport> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paystate-rebuild-'));
  const scratch = openScratch(path.join(dir, 'scratch.db'));
  try {
    const skipped = new Set(
      db
        .select({ paymentId: events.paymentId })
        .from(events)
        .where(and(isNull(events.rawBody), isNotNull(events.rawBytes)))
        .all()
        .flatMap((row) => (row.paymentId ? [row.paymentId] : [])),
    );
    const pageSize = 1000;
    const neverApplied = new Set<string>();
    for (let afterSeq = 0; ;) {
      const page = listEventsQuery(db, { afterSeq, limit: pageSize });
      if (page.length === 0) break;
      for (const event of page) {
        afterSeq = event.seq;
        // Failed events were never applied and wait for a retry or a replay.
        if (event.outcome === 'failed') {
          neverApplied.add(event.eventId);
          continue;
        }
        // A replay repeats a stored event applied here already, unless that original failed: then it counts.
        const repeat = event.source === 'replay' && !(event.replayOf && neverApplied.has(event.replayOf));
        if (event.rawBody === null || repeat) continue;
        await scratch.apply({
          event: { ...event, replayOf: null, actionId: null },
          reading: readStoredEvent(event),
        });
      }
    }
    const differences: RebuildReport['differences'] = [];
    let checked = 0;
    for (const payment of db.select().from(payments).where(isNull(payments.staleAt)).all()) {
      if (skipped.has(payment.id)) continue;
      const rebuilt = await scratch.getPayment(payment.id);
      if (!rebuilt) continue;
      checked += 1;
      const ledgerView = statusView(payment)!;
      const rebuiltView = statusView(rebuilt)!;
      if (JSON.stringify(ledgerView) !== JSON.stringify(rebuiltView)) {
        differences.push({ paymentId: payment.id, ledger: ledgerView, rebuilt: rebuiltView });
      }
    }
    if (!options.dryRun && differences.length) {
      inTransaction(db, false, (txDb) => {
        for (const { paymentId, ledger, rebuilt } of differences) {
          txDb
            .update(payments)
            .set({ ...rebuilt, updatedAt: at })
            .where(eq(payments.id, paymentId))
            .run();
          recordChange(
            { db: txDb, stmt },
            {
              paymentId,
              kind: 'status',
              fromStage: ledger.stage,
              toStage: rebuilt.stage,
              fromStatusCode: ledger.statusCode,
              toStatusCode: rebuilt.statusCode,
              cause: 'rebuild: recomputed from the stored events',
              at,
            },
          );
        }
      });
    }
    return {
      checked,
      differences,
      skipped: [...skipped],
      applied: !options.dryRun && differences.length > 0,
    };
  } finally {
    await scratch.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

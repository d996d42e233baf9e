import { createHash } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import fs from 'node:fs';
import { applyEvent } from './apply';
import { flagReversalAfterRelease, recordChange, savePayment, scheduleNextCheck } from './changes';
import type { CheckPolicy } from './check-schedule';
import type {
  EventFilter,
  Ledger,
  OperatorActionInput,
  Payment,
  PaymentStatusView,
  RebuildOptions,
  RebuildReport,
  ReplayResult,
  StoredEvent,
} from './ledger';
import { readPaymentDetails, readWebhookEvent, type Reading } from './observation';
import { call, type Effect } from './store';

/** The operator_actions row for an action (both backends). */
export function operatorActionRow(input: OperatorActionInput, at: number) {
  return {
    actor: input.actor,
    reason: input.reason,
    action: input.action,
    target: input.target,
    count: input.count,
    dryRun: input.dryRun,
    detailsJson: input.details === undefined ? null : JSON.stringify(input.details),
    at,
  };
}

export function statusView(payment: Payment | undefined): PaymentStatusView | null {
  if (!payment) return null;
  const { statusCode, stage, capturedTotal, refundedTotal, changeTime } = payment;
  return { statusCode, stage, capturedTotal, refundedTotal, changeTime };
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

/** The id base a replay of `original` writes under (the backend serialises on it). */
export function replayPaymentId(original: StoredEvent, reading: Reading = readStoredEvent(original)) {
  return reading.kind === 'observation' && reading.observation.kind === 'payment'
    ? reading.observation.paymentId
    : original.paymentId;
}

/**
 * Feeds a stored event (with its raw body) back through applyEvent as a new event. The backend runs it in a
 * transaction and rolls it back for a dry run.
 */
export function* replayStoredEvent(
  original: StoredEvent & { rawBody: string },
  options: { actionId: number | null; dryRun: boolean },
  at: number,
  policy: CheckPolicy,
): Effect<ReplayResult> {
  const eventId = original.eventId;
  const replayEventId = `replay-${options.actionId ?? 'dry'}-${eventId}`;
  const reading = readStoredEvent(original);
  const paymentId = replayPaymentId(original, reading);
  const current = function* (id: string | null) {
    return id ? statusView(yield* call('paymentById', id)) : null;
  };
  const before = yield* current(paymentId);
  const result = yield* applyEvent(
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
    after: yield* current(result.paymentId ?? paymentId),
    reason: result.reason,
    dryRun: options.dryRun,
  };
}

/** What a rebuild needs of the ledger it checks. */
export interface RebuildSource {
  listEvents(filter: EventFilter): Promise<StoredEvent[]>;
  /** Payments some of whose raw events were cleared by retention. */
  purgedPaymentIds(): Promise<string[]>;
  /** Payments the reconciler has not given up on, by id (the order corrections are written in). */
  activePayments(): Promise<Payment[]>;
  /** Runs the corrections in one write transaction that holds these payments against other writers. */
  write<T>(paymentIds: string[], effect: () => Effect<T>): Promise<T>;
}

interface Correction {
  paymentId: string;
  /** The row as compared: corrected only if it is still exactly this. */
  compared: Payment;
  /** Its events the scan read (all but failed ones): corrected only if there are still exactly these many. */
  events: number;
  rebuilt: Payment;
}

/** Corrections per write transaction: bounded locks (PostgreSQL takes one per payment) and short lock waits. */
const CORRECTIONS_PER_TRANSACTION = 500;

/**
 * The consistency check: every stored event with its raw body is applied again, in its original order, to a
 * scratch ledger; payments whose recomputed state differs from the ledger's are listed (and, without a dry
 * run, set to the recomputed state with a state change saying so).
 *
 * The workers keep writing meanwhile, and a recomputation that missed a write is behind the ledger, not a
 * correction of it. Event order cannot tell (a retried event keeps its seq; PostgreSQL sequence values can
 * commit out of order), so the payment rows are fingerprinted before the scan and each payment's events are
 * counted as the scan reads them: a payment whose row changed since then, or whose events are no longer the
 * ones counted (a superseded event changes no row), is left as it is and reported as `changed` (run the
 * rebuild again). Corrections commit per batch: when one fails, the ones before it stay and the report says
 * which were not written.
 */
export async function rebuildLedger(
  source: RebuildSource,
  openScratch: (file: string) => Ledger,
  options: RebuildOptions,
  now: () => number,
  policy: CheckPolicy,
): Promise<RebuildReport> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paystate-rebuild-'));
  const scratch = openScratch(path.join(dir, 'scratch.db'));
  try {
    const skipped = new Set(await source.purgedPaymentIds());
    const before = new Map((await source.activePayments()).map((payment) => [payment.id, rowPrint(payment)]));
    const eventsRead = new Map<string, number>();
    const pageSize = 1000;
    const neverApplied = new Set<string>();
    for (let afterSeq = 0; ;) {
      const page = await source.listEvents({ afterSeq, limit: pageSize });
      if (page.length === 0) break;
      for (const event of page) {
        afterSeq = event.seq;
        if (event.paymentId !== null && event.outcome !== 'failed')
          eventsRead.set(event.paymentId, (eventsRead.get(event.paymentId) ?? 0) + 1);
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
    await options.beforePhase?.('compare');
    const corrections: Correction[] = [];
    const changed: string[] = [];
    let checked = 0;
    for (const payment of await source.activePayments()) {
      if (skipped.has(payment.id)) continue;
      const rebuilt = await scratch.getPayment(payment.id);
      if (!rebuilt) continue;
      checked += 1;
      if (sameView(statusView(payment)!, statusView(rebuilt)!)) continue;
      if (before.get(payment.id) !== rowPrint(payment)) changed.push(payment.id);
      else {
        const events = eventsRead.get(payment.id) ?? 0;
        corrections.push({ paymentId: payment.id, compared: payment, events, rebuilt });
      }
    }
    let corrected = corrections;
    let failed: RebuildReport['failed'] = null;
    if (!options.dryRun && corrections.length) {
      await options.beforePhase?.('correct');
      const moved = new Set<string>();
      let written = 0;
      for (; written < corrections.length; written += CORRECTIONS_PER_TRANSACTION) {
        const batch = corrections.slice(written, written + CORRECTIONS_PER_TRANSACTION);
        const ids = batch.map((correction) => correction.paymentId);
        try {
          for (const id of await source.write(ids, () => correctPayments(batch, now(), policy)))
            moved.add(id);
        } catch (error) {
          const paymentIds = corrections.slice(written).map((correction) => correction.paymentId);
          failed = { error: error instanceof Error ? error.message : String(error), paymentIds };
          break;
        }
      }
      corrected = corrections.slice(0, written).filter((correction) => !moved.has(correction.paymentId));
      changed.push(...moved);
    }
    return {
      checked,
      differences: corrected.map(({ paymentId, compared, rebuilt }) => ({
        paymentId,
        ledger: statusView(compared)!,
        rebuilt: statusView(rebuilt)!,
      })),
      changed,
      skipped: [...skipped],
      applied: !options.dryRun && corrected.length > 0,
      failed,
    };
  } finally {
    await scratch.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * A digest of a payment row's every column, in a fixed order: equal prints, equal rows (both backends read the
 * same types). A digest, so that holding one per payment stays small on a large ledger.
 */
function rowPrint(payment: Payment): string {
  const values = Object.keys(payment)
    .sort()
    .map((key) => payment[key as keyof Payment]);
  return createHash('sha256').update(JSON.stringify(values)).digest('base64');
}

const sameView = (a: PaymentStatusView, b: PaymentStatusView) => JSON.stringify(a) === JSON.stringify(b);

/** The columns a status decides (see paymentAfter); a correction takes them all from the recomputed row. */
const STATUS_COLUMNS = [
  'statusCode',
  'status',
  'statusCategory',
  'stage',
  'rank',
  'uncertain',
  'isAuthorized',
  'isCancellable',
  'isRefundable',
  'capturedTotal',
  'refundedTotal',
  'errorsJson',
  'changeTime',
  'lastSource',
] as const satisfies readonly (keyof Payment)[];

/**
 * Sets each payment to its recomputed status, unless its row moved since it was compared: then it is left as
 * it is, and its id returned. The schedule and the reversal flag follow the new status as after any write.
 */
function* correctPayments(corrections: Correction[], at: number, policy: CheckPolicy): Effect<string[]> {
  const moved: string[] = [];
  for (const { paymentId, compared, events, rebuilt } of corrections) {
    const held = yield* call('paymentById', paymentId);
    if (
      !held ||
      rowPrint(held) !== rowPrint(compared) ||
      (yield* call('eventCountOf', paymentId)) !== events
    ) {
      moved.push(paymentId);
      continue;
    }
    const status = Object.fromEntries(STATUS_COLUMNS.map((column) => [column, rebuilt[column]])) as Pick<
      Payment,
      (typeof STATUS_COLUMNS)[number]
    >;
    const payment: Payment = { ...held, ...status, updatedAt: at };
    yield* recordChange({
      paymentId,
      kind: 'status',
      fromStage: held.stage,
      toStage: payment.stage,
      fromStatusCode: held.statusCode,
      toStatusCode: payment.statusCode,
      cause: 'rebuild: recomputed from the stored events',
      at,
    });
    const flagged = yield* flagReversalAfterRelease(payment, null, at);
    const { payment: scheduled } = yield* scheduleNextCheck(flagged, at, policy);
    yield* savePayment(held, scheduled);
  }
  return moved;
}

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
  /** Payments the reconciler has not given up on. */
  activePayments(): Promise<Payment[]>;
  /** Runs the corrections in one write transaction that holds these payments against other writers. */
  write<T>(paymentIds: string[], effect: () => Effect<T>): Promise<T>;
}

interface Correction {
  paymentId: string;
  ledger: PaymentStatusView;
  rebuilt: Payment;
}

/**
 * The consistency check: every stored event with its raw body is applied again, in its original order, to a
 * scratch ledger; payments whose recomputed state differs from the ledger's are listed (and, without a dry
 * run, set to the recomputed state with a state change saying so).
 *
 * The workers keep writing meanwhile, and a recomputation that missed an event is behind the ledger, not a
 * correction of it. So a payment with an event newer than the scan, or whose state moved between the
 * comparison and the correction, is left as it is and reported as `changed` (run the rebuild again).
 */
export async function rebuildLedger(
  source: RebuildSource,
  openScratch: (file: string) => Ledger,
  options: RebuildOptions,
  at: number,
  policy: CheckPolicy,
): Promise<RebuildReport> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paystate-rebuild-'));
  const scratch = openScratch(path.join(dir, 'scratch.db'));
  try {
    const skipped = new Set(await source.purgedPaymentIds());
    const pageSize = 1000;
    const neverApplied = new Set<string>();
    let afterSeq = 0;
    for (;;) {
      const page = await source.listEvents({ afterSeq, limit: pageSize });
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
    await options.beforePhase?.('compare');
    const corrections: Correction[] = [];
    const changed: string[] = [];
    let checked = 0;
    for (const payment of await source.activePayments()) {
      if (skipped.has(payment.id)) continue;
      const rebuilt = await scratch.getPayment(payment.id);
      if (!rebuilt) continue;
      checked += 1;
      const ledgerView = statusView(payment)!;
      if (sameView(ledgerView, statusView(rebuilt)!)) continue;
      const newer = await source.listEvents({ paymentId: payment.id, afterSeq, limit: 1 });
      if (newer.length > 0) changed.push(payment.id);
      else corrections.push({ paymentId: payment.id, ledger: ledgerView, rebuilt });
    }
    let corrected = corrections;
    if (!options.dryRun && corrections.length) {
      await options.beforePhase?.('correct');
      const ids = corrections.map((correction) => correction.paymentId);
      const moved = new Set(await source.write(ids, () => correctPayments(corrections, at, policy)));
      corrected = corrections.filter((correction) => !moved.has(correction.paymentId));
      changed.push(...moved);
    }
    return {
      checked,
      differences: corrected.map(({ paymentId, ledger, rebuilt }) => ({
        paymentId,
        ledger,
        rebuilt: statusView(rebuilt)!,
      })),
      changed,
      skipped: [...skipped],
      applied: !options.dryRun && corrected.length > 0,
    };
  } finally {
    await scratch.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
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
  for (const { paymentId, ledger, rebuilt } of corrections) {
    const held = yield* call('paymentById', paymentId);
    if (!held || !sameView(statusView(held)!, ledger)) {
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

import os from 'node:os';
import path from 'node:path';
import fs from 'node:fs';
import { applyEvent } from './apply';
import { recordChange } from './changes';
import type { CheckPolicy } from './check-schedule';
import type {
  EventFilter,
  Ledger,
  OperatorActionInput,
  Payment,
  PaymentStatusView,
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
  /** Runs the corrections in one write transaction. */
  write(effect: Effect<void>): Promise<void>;
}

/**
 * The consistency check: every stored event with its raw body is applied again, in its original order, to a
 * scratch ledger; payments whose recomputed state differs from the ledger's are listed (and, without a dry
 * run, set to the recomputed state with a state change saying so).
 */
export async function rebuildLedger(
  source: RebuildSource,
  openScratch: (file: string) => Ledger,
  options: { dryRun: boolean },
  at: number,
): Promise<RebuildReport> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paystate-rebuild-'));
  const scratch = openScratch(path.join(dir, 'scratch.db'));
  try {
    const skipped = new Set(await source.purgedPaymentIds());
    const pageSize = 1000;
    const neverApplied = new Set<string>();
    for (let afterSeq = 0; ;) {
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
    const differences: RebuildReport['differences'] = [];
    let checked = 0;
    for (const payment of await source.activePayments()) {
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
    if (!options.dryRun && differences.length) await source.write(writeRebuilt(differences, at));
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

function* writeRebuilt(differences: RebuildReport['differences'], at: number): Effect<void> {
  for (const { paymentId, ledger, rebuilt } of differences) {
    const held = yield* call('paymentById', paymentId);
    if (!held) continue;
    yield* call('updatePayment', held, { ...held, ...rebuilt, updatedAt: at });
    yield* recordChange({
      paymentId,
      kind: 'status',
      fromStage: ledger.stage,
      toStage: rebuilt.stage,
      fromStatusCode: ledger.statusCode,
      toStatusCode: rebuilt.statusCode,
      cause: 'rebuild: recomputed from the stored events',
      at,
    });
  }
}

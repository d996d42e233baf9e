import { eq } from 'drizzle-orm';
import type { BetterSQLite3Database } from 'drizzle-orm/better-sqlite3';
import type { EventRecord } from './ledger';
import type * as schema from './schema';
import { events, type EventOutcome } from './schema';
import type { Tx } from './sqlite-statements';

export type Db = BetterSQLite3Database<typeof schema>;

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
    replayOf: event.replayOf ?? null,
    actionId: event.actionId ?? null,
  };
}

export interface EventResult {
  outcome: EventOutcome;
  reason: string;
  paymentId: string | null;
  refundId?: string | null;
  statusCode?: number | null;
  changeTime?: string | null;
}

/**
 * Inserts the event row, or rewrites a retryable one (invalid/failed, whose seq the gate read) now that it has
 * been processed again. Returns the event's seq.
 */
export function writeEvent(
  tx: Tx,
  event: EventRecord,
  result: EventResult,
  at: number,
  existingSeq: number | null,
): number {
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
  if (existingSeq === null) return Number(tx.stmt.insertEvent.run(columns).lastInsertRowid);
  tx.db.update(events).set(columns).where(eq(events.seq, existingSeq)).run();
  return existingSeq;
}

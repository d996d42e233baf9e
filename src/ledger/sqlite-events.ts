import { eq } from 'drizzle-orm';
import type { BetterSQLite3Database } from 'drizzle-orm/better-sqlite3';
import type { EventRecord } from './ledger';
import type * as schema from './schema';
import { events, type EventOutcome } from './schema';

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

/** Inserts the event row, or rewrites a retryable one (invalid/failed) now that it has been processed again. */
export function writeEvent(
  tx: Db,
  event: EventRecord,
  result: EventResult,
  at: number,
  exists: boolean,
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

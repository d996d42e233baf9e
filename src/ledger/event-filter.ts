import { and, eq, gt, gte, lte, type SQL } from 'drizzle-orm';
import type { EventFilter } from './ledger';
import type { events as pgEvents } from './pg-schema';
import type { events as sqliteEvents } from './schema';

/** The WHERE of an event listing, for either backend's `events` table (same columns, see pg-schema.ts). */
export function eventFilterWhere(
  events: typeof sqliteEvents | typeof pgEvents,
  filter: EventFilter,
): SQL | undefined {
  const conditions: SQL[] = [];
  if (filter.outcome) conditions.push(eq(events.outcome, filter.outcome));
  if (filter.type) conditions.push(eq(events.type, filter.type));
  if (filter.paymentId) conditions.push(eq(events.paymentId, filter.paymentId));
  if (filter.source) conditions.push(eq(events.source, filter.source));
  if (filter.since !== undefined) conditions.push(gte(events.receivedAt, filter.since));
  if (filter.until !== undefined) conditions.push(lte(events.receivedAt, filter.until));
  if (filter.afterSeq !== undefined) conditions.push(gt(events.seq, filter.afterSeq));
  return and(...conditions);
}

import express, { type Router } from 'express';
import { zEventsQuery } from '../../schemas';
import type { Ledger, StoredEvent } from '../ledger';
import { decodeCursor, encodeCursor } from './changes-route';
import { sendInvalidField, sendInvalidRequest } from './http-error';

export interface EventsRouteOptions {
  ledger: Ledger;
}

const iso = (ms: number) => new Date(ms).toISOString();

function eventJson(event: StoredEvent) {
  return {
    cursor: encodeCursor(event.seq),
    eventId: event.eventId,
    source: event.source,
    type: event.type,
    paymentId: event.paymentId,
    statusCode: event.statusCode,
    outcome: event.outcome,
    reason: event.reason,
    deliveries: event.deliveries,
    receivedAt: iso(event.receivedAt),
    replayOf: event.replayOf,
  };
}

/**
 * The stored events (what `paystate events` lists), oldest first, filtered by outcome, type and receipt
 * time. Pages follow the event sequence: `next` is the last listed event's cursor, "0" starts at the
 * beginning, and a page shorter than `limit` is the end for now.
 */
export function createEventsRouter(options: EventsRouteOptions): Router {
  const { ledger } = options;
  const router = express.Router();
  router.get('/v1/events', async (req, res) => {
    const query = zEventsQuery.safeParse(req.query);
    if (!query.success) return sendInvalidRequest(res, query.error);
    const { outcome, type, since, until, limit } = query.data;
    const after = decodeCursor(query.data.after);
    if (after === undefined) {
      return sendInvalidField(res, 'after', 'not a cursor this listing gave out (use "0" to start)');
    }
    const events = await ledger.listEvents({
      outcome,
      type,
      since: since === undefined ? undefined : Date.parse(since),
      until: until === undefined ? undefined : Date.parse(until),
      afterSeq: after,
      limit,
    });
    const last = events.at(-1);
    res.json({ events: events.map(eventJson), next: encodeCursor(last ? last.seq : after) });
  });
  return router;
}

import type { EventFilter, Ledger, StoredEvent } from '../ledger';
import { CliError } from './output';

export interface ReplaySelection {
  event?: string;
  payment?: string;
  since?: number;
  until?: number;
  type?: string;
  /** Most events selected; more is refused. */
  max: number;
}

const PAGE = 500;

/** Original events (webhook or poll) matching the filter, oldest first; refuses more than `max`. */
async function findOriginals(
  ledger: Ledger,
  filter: Omit<EventFilter, 'limit' | 'afterSeq'>,
  max: number,
): Promise<StoredEvent[]> {
  const found: StoredEvent[] = [];
  for (let afterSeq = 0; ;) {
    const page = await ledger.listEvents({ ...filter, afterSeq, limit: PAGE });
    for (const event of page) {
      afterSeq = event.seq;
      if (event.source === 'replay') continue;
      found.push(event);
      if (found.length > max) {
        throw new CliError(`more than --max ${max} events match: narrow the selection or raise --max`);
      }
    }
    if (page.length < PAGE) return found;
  }
}

/** The payment id a stored raw body names (a webhook's `payment.id`, a GetPaymentDetails answer's `id`). */
function paymentIdInBody(event: StoredEvent): string | null {
  if (event.rawBody === null) return null;
  try {
    const body: unknown = JSON.parse(event.rawBody);
    const item = event.rawIndex === null ? body : (body as unknown[])[event.rawIndex];
    const payment = event.source === 'poll' ? item : (item as { payment?: unknown } | undefined)?.payment;
    const id = (payment as { id?: unknown } | undefined)?.id;
    return typeof id === 'string' ? id : null;
  } catch {
    return null;
  }
}

/**
 * Failed and invalid events are stored without a payment id (they were never read through), so a payment's
 * dead letters are found by the id their raw body names. There are few of them: they wait for an operator.
 */
async function findUnlinked(
  ledger: Ledger,
  paymentId: string,
  type: string | undefined,
): Promise<StoredEvent[]> {
  const found: StoredEvent[] = [];
  for (const outcome of ['failed', 'invalid'] as const) {
    const candidates = await findOriginals(
      ledger,
      { outcome, ...(type && { type }) },
      Number.MAX_SAFE_INTEGER,
    );
    found.push(
      ...candidates.filter((event) => event.paymentId === null && paymentIdInBody(event) === paymentId),
    );
  }
  return found;
}

/** The original events a replay selects: one event, a payment's events, or those received in a window. */
export async function selectReplayEvents(ledger: Ledger, options: ReplaySelection): Promise<StoredEvent[]> {
  if (options.event !== undefined) {
    const event = await ledger.getEvent(options.event);
    if (!event) throw new CliError(`no stored event ${options.event} in the ledger`);
    if (event.source === 'replay') {
      throw new CliError(`${event.eventId} is a replay of ${event.replayOf}: replay the original instead`);
    }
    return [event];
  }
  const typed = options.type === undefined ? {} : { type: options.type };
  if (options.payment !== undefined) {
    const events = [
      ...(await findOriginals(ledger, { paymentId: options.payment, ...typed }, options.max)),
      ...(await findUnlinked(ledger, options.payment, options.type)),
    ].sort((a, b) => a.seq - b.seq);
    if (events.length > options.max) {
      throw new CliError(`more than --max ${options.max} events match: narrow the selection or raise --max`);
    }
    if (!events.length && !(await ledger.getPayment(options.payment))) {
      throw new CliError(`no payment ${options.payment} in the ledger`);
    }
    return events;
  }
  return findOriginals(
    ledger,
    { since: options.since, until: options.until ?? Date.now(), ...typed },
    options.max,
  );
}

import { UnrecoverableError, type Job } from 'bullmq';
import type { ApplyResult, EventRecord, Ledger } from '../ledger';
import { readWebhookEvent } from '../ledger';
import type { Logger } from '../log';
import { zStatusEventJob, type StatusEventJob } from './status-events';

/** A job or event that no retry can fix; it stays in the failed set for the on-call tools. */
export class InvalidStatusEventError extends UnrecoverableError {
  override name = 'InvalidStatusEventError';
  constructor(readonly reason: string) {
    super(`invalid status event: ${reason}`);
  }
}

export function eventRecordOf(job: StatusEventJob): EventRecord {
  return {
    eventId: job.eventId,
    source: 'webhook',
    type: job.type,
    keyId: job.keyId,
    signature: job.signature,
    rawBody: job.rawBody,
    rawIndex: job.rawIndex,
    receivedAt: job.receivedAt,
  };
}

function eventFromBody(job: StatusEventJob): unknown {
  const body: unknown = JSON.parse(job.rawBody);
  return job.rawIndex === null ? body : (body as unknown[])[job.rawIndex];
}

/**
 * Applies one queued webhook event through the ledger's one door. A thrown plain Error (SQLite busy, I/O) is
 * retried by BullMQ with backoff; an invalid event is recorded as such and fails at once.
 */
export function createStatusEventProcessor(ledger: Ledger, log: Logger) {
  return async (job: Job<unknown>): Promise<ApplyResult> => {
    const parsed = zStatusEventJob.safeParse(job.data);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new InvalidStatusEventError(`job data ${issue?.path.join('.')}: ${issue?.message}`);
    }
    const data = parsed.data;
    let event: unknown;
    try {
      event = eventFromBody(data);
    } catch {
      event = undefined;
    }
    const reading =
      event && typeof event === 'object'
        ? readWebhookEvent(event as Parameters<typeof readWebhookEvent>[0])
        : ({ kind: 'invalid', reason: 'rawBody does not hold the event' } as const);
    const result = await ledger.apply({ event: eventRecordOf(data), reading });
    // Fields written out at each call: `{ ...fields, key }` costs V8 ~1 µs per added key.
    const { eventId, type } = data;
    const { paymentId, outcome, reason } = result;
    if (outcome === 'invalid') {
      log.warn('status event invalid', { eventId, paymentId, type, outcome, reason });
      throw new InvalidStatusEventError(reason);
    }
    if (result.reversedAfterRelease) {
      log.warn('released goods reversed: payment refunded, cancelled or charged back after release', {
        eventId,
        paymentId,
        type,
        outcome,
      });
    }
    if (outcome === 'unknown_code')
      log.warn('unknown statusCode recorded', { eventId, paymentId, type, outcome, reason });
    else
      log.debug('status event processed', {
        eventId,
        paymentId,
        type,
        outcome,
        stateChanged: result.stateChanged,
      });
    return result;
  };
}

const RECORD_ATTEMPTS = 20;
const RECORD_RETRY_MS = 500;

/**
 * After the last attempt, the event is also recorded in the ledger as `failed` with its error, so the dead
 * letter does not live in Redis alone.
 */
export async function recordExhaustedJob(ledger: Ledger, job: Job<unknown>, error: Error, log: Logger) {
  // Invalid events are already recorded by apply; invalid job data has no event to record.
  if (error instanceof InvalidStatusEventError) return;
  const exhausted = job.attemptsMade >= (job.opts.attempts ?? 1);
  if (!exhausted) return;
  const parsed = zStatusEventJob.safeParse(job.data);
  if (!parsed.success) return;
  // The failure may be the ledger itself (locked, disk full): keep trying for a while so the record lands.
  for (let attempt = 1; ; attempt++) {
    try {
      await ledger.recordFailedEvent(eventRecordOf(parsed.data), error.message);
      break;
    } catch (recordError) {
      if (attempt >= RECORD_ATTEMPTS) throw recordError;
      await new Promise((resolve) => setTimeout(resolve, RECORD_RETRY_MS));
    }
  }
  log.error('status event failed for good', {
    eventId: parsed.data.eventId,
    attempts: job.attemptsMade,
    error: error.message,
  });
}

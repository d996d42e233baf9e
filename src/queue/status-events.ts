import { Queue, type JobsOptions } from 'bullmq';
import type { Redis } from 'ioredis';
import { z } from 'zod';

export const STATUS_EVENTS_QUEUE = 'status-events';

/** One verified webhook event as it travels from the receiver to the status worker. */
export const zStatusEventJob = z.object({
  eventId: z.string().min(1),
  type: z.string(),
  keyId: z.string(),
  signature: z.string(),
  /** The delivery body exactly as received (UTF-8). */
  rawBody: z.string(),
  /** Position of the event when the body was a JSON array; null for a bare object. */
  rawIndex: z.number().int().nonnegative().nullable(),
  receivedAt: z.number().int(),
});
export type StatusEventJob = z.infer<typeof zStatusEventJob>;

/**
 * Completed jobs go after a day: de-duplication that must last lives in the ledger (unique event id), not in
 * BullMQ's retention. Failed jobs stay for the on-call tools.
 */
export const STATUS_EVENT_JOB_OPTIONS: JobsOptions = {
  attempts: 10,
  backoff: { type: 'exponential', delay: 1_000, jitter: 0.5 },
  removeOnComplete: { age: 24 * 3600, count: 100_000 },
  removeOnFail: false,
};

export function createStatusEventsQueue(
  connection: Redis,
  jobOptions: JobsOptions = STATUS_EVENT_JOB_OPTIONS,
): Queue<StatusEventJob> {
  return new Queue<StatusEventJob>(STATUS_EVENTS_QUEUE, { connection, defaultJobOptions: jobOptions });
}

export class EnqueueTimeoutError extends Error {
  override name = 'EnqueueTimeoutError';
  constructor(timeoutMs: number) {
    super(`Redis did not acknowledge the job within ${timeoutMs} ms`);
  }
}

/**
 * Adds every event of one delivery in a single MULTI (all or none), with jobId = event id so a re-delivery
 * makes no second job. Resolves only once Redis has acknowledged; rejects after `timeoutMs`.
 */
export async function enqueueStatusEvents(
  queue: Queue<StatusEventJob>,
  jobs: readonly StatusEventJob[],
  timeoutMs: number,
): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new EnqueueTimeoutError(timeoutMs)), timeoutMs);
  });
  const add =
    jobs.length === 1
      ? queue.add(jobs[0]!.type, jobs[0]!, { jobId: jobs[0]!.eventId })
      : queue.addBulk(jobs.map((data) => ({ name: data.type, data, opts: { jobId: data.eventId } })));
  try {
    await Promise.race([add, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

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
 * Completed jobs go after an hour, and beyond the last 10,000: the ledger keeps every event (raw body, outcome)
 * and de-duplicates by event id for good, so a completed job in Redis is only a copy. Each holds its raw body
 * (~2 KB), and Redis's AOF rewrite copies the whole dataset: with 100,000 kept, each rewrite at 1,000
 * deliveries/s showed as a burst of slow deliveries in bench:e2e. Failed jobs stay for the on-call tools.
 */
export const STATUS_EVENT_JOB_OPTIONS: JobsOptions = {
  attempts: 10,
  backoff: { type: 'exponential', delay: 1_000, jitter: 0.5 },
  removeOnComplete: { age: 3600, count: 10_000 },
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

interface PendingDelivery {
  jobs: readonly StatusEventJob[];
  resolve: () => void;
  reject: (error: Error) => void;
}

/**
 * Queues the events of concurrent deliveries together, as group commit does: while one `addBulk` is on its way
 * to Redis, deliveries arriving meanwhile gather and go as the next one (one pipelined write and one reply for
 * all of them), instead of a Redis write each. Each delivery's promise settles only once Redis has answered for
 * its batch, so no delivery is answered 2xx before its jobs are in Redis. jobId = event id, so a re-delivery
 * makes no second job. A batch that fails fails every delivery in it (each answered 503).
 */
export class StatusEventEnqueuer {
  private pending: PendingDelivery[] = [];
  private flushScheduled = false;
  private sending = false;

  constructor(
    private readonly queue: Queue<StatusEventJob>,
    /** How long a delivery waits for Redis's acknowledgement before it is given up (503). */
    private readonly timeoutMs: number,
  ) {}

  enqueue(jobs: readonly StatusEventJob[]): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const queued = new Promise<void>((resolve, reject) => {
      this.pending.push({ jobs, resolve, reject });
      this.scheduleFlush();
    });
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new EnqueueTimeoutError(this.timeoutMs)), this.timeoutMs);
    });
    return Promise.race([queued, timeout]).finally(() => clearTimeout(timer));
  }

  private scheduleFlush(): void {
    if (this.flushScheduled || this.sending || this.pending.length === 0) return;
    this.flushScheduled = true;
    setImmediate(() => void this.flush());
  }

  private async flush(): Promise<void> {
    const batch = this.pending;
    this.pending = [];
    this.flushScheduled = false;
    this.sending = true;
    const jobs = batch.flatMap((delivery) => delivery.jobs);
    try {
      await this.queue.addBulk(
        jobs.map((data) => ({ name: data.type, data, opts: { jobId: data.eventId } })),
      );
      for (const delivery of batch) delivery.resolve();
    } catch (error) {
      for (const delivery of batch) delivery.reject(error as Error);
    } finally {
      this.sending = false;
      this.scheduleFlush();
    }
  }
}

import { Queue, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Ledger } from '../ledger';
import type { Logger } from '../log';
import { adaptConcurrencyToBacklog } from './backlog-concurrency';
import { createLedgerOutageGuard } from './ledger-outage';
import { createStatusEventProcessor, recordExhaustedJob } from './status-event-processor';
import { STATUS_EVENTS_QUEUE } from './status-events';

export interface StatusWorkerOptions {
  connection: Redis;
  ledger: Ledger;
  log: Logger;
  /** Jobs processed at once. @defaultValue 10 */
  concurrency?: number;
  /** Jobs processed at once while a backlog waits (see backlog-concurrency.ts). @defaultValue `concurrency` */
  backlogConcurrency?: number;
  /** Waiting jobs from which the worker runs at `backlogConcurrency`. @defaultValue 100 */
  backlogThreshold?: number;
}

/** The status worker: consumes `status-events` and applies each event through the ledger. */
export function createStatusWorker(options: StatusWorkerOptions): Worker {
  const { ledger, log } = options;
  const concurrency = options.concurrency ?? 10;
  const outage = createLedgerOutageGuard(ledger, log);
  const worker = new Worker(STATUS_EVENTS_QUEUE, outage.processor(createStatusEventProcessor(ledger, log)), {
    connection: options.connection,
    concurrency,
    // A SIGKILLed worker is not a bad event: allow a job to stall more than once before it fails.
    maxStalledCount: 3,
    // A dead worker's jobs come back after the lock expires and the next stall check: ~15 s instead of BullMQ's
    // ~60 s. Applies take milliseconds, and a job run twice after a lost lock meets the ledger's dedupe gate.
    lockDuration: 10_000,
    stalledInterval: 5_000,
  });
  outage.watch(worker);
  worker.on('closing', () => outage.stop());
  const backlogConcurrency = options.backlogConcurrency ?? concurrency;
  if (backlogConcurrency !== concurrency) {
    const queue = new Queue(STATUS_EVENTS_QUEUE, { connection: options.connection });
    queue.on('error', (error) => log.error('queue error', { error: error.message }));
    const adapt = adaptConcurrencyToBacklog(worker, () => queue.getWaitingCount(), log, {
      base: concurrency,
      backlog: backlogConcurrency,
      threshold: options.backlogThreshold,
    });
    void adapt.check();
    worker.on('closing', () => {
      adapt.stop();
      queue
        .close()
        .catch((error: Error) => log.warn('closing the backlog count failed', { error: error.message }));
    });
  }
  worker.on('error', (error) => log.error('worker error', { error: error.message }));
  worker.on('failed', (job, error) => {
    if (!job) return;
    recordExhaustedJob(ledger, job, error, log).catch((recordError: Error) =>
      log.error('could not record failed event', { eventId: job.id, error: recordError.message }),
    );
  });
  return worker;
}

import { Queue, UnrecoverableError, Worker, type Job, type JobsOptions } from 'bullmq';
import type { Redis } from 'ioredis';
import { z } from 'zod';
import { readPaymentDetails, type ApplyResult, type Ledger } from '../ledger';
import type { Logger } from '../log';
import type { PaymentDetailsResult } from '../platform';
import { createLedgerOutageGuard } from './ledger-outage';

export const RECONCILE_SWEEPS_QUEUE = 'reconcile-sweeps';
export const PAYMENT_POLLS_QUEUE = 'payment-polls';

export const zPaymentPollJob = z.object({
  paymentId: z.string().min(1),
  attempt: z.number().int().positive(),
});
export type PaymentPollJob = z.infer<typeof zPaymentPollJob>;

/** What the poll worker needs of the platform: GetPaymentDetails, retried and rate-limited by the client. */
export interface PaymentDetailsSource {
  getPaymentDetails(paymentId: string): Promise<PaymentDetailsResult>;
}

/**
 * Poll jobs are kept an hour after they end: a job id is per payment, attempt and planned time, so a sweep that
 * runs again before the poll made progress adds nothing, and a failed poll can be tried again an hour later. The
 * planned time tells apart two checks of one attempt: a conclusive payment's attempts start again at 0 after
 * each poll, so a second refund within the hour would otherwise meet the first one's finished job.
 */
const POLL_JOB_OPTIONS: JobsOptions = {
  attempts: 3,
  backoff: { type: 'exponential', delay: 5_000, jitter: 0.5 },
  removeOnComplete: { age: 3600 },
  removeOnFail: { age: 3600 },
};

export function pollJobId(paymentId: string, attempt: number, plannedAt: number): string {
  return `poll-${paymentId}-${attempt}-${plannedAt}`;
}

export interface SweepOptions {
  ledger: Ledger;
  polls: Queue<PaymentPollJob>;
  /** Most poll jobs one sweep enqueues. */
  cap: number;
  log: Logger;
  now?: () => number;
}

/** One sweep: read only the due rows (index on nextCheckAt) and enqueue one poll job per due payment. */
export async function sweepDuePayments(options: SweepOptions): Promise<{ due: number }> {
  const due = await options.ledger.listDueChecks((options.now ?? Date.now)(), options.cap);
  if (due.length) {
    await options.polls.addBulk(
      due.map(({ paymentId, checkAttempts, nextCheckAt }) => ({
        name: 'poll',
        data: { paymentId, attempt: checkAttempts + 1 },
        opts: { ...POLL_JOB_OPTIONS, jobId: pollJobId(paymentId, checkAttempts + 1, nextCheckAt) },
      })),
    );
    options.log.info('reconcile sweep', { due: due.length, cap: options.cap });
  }
  return { due: due.length };
}

/**
 * Asks the platform and applies its answer through the same `apply` as webhooks (source `poll`). A 404 is
 * recorded and the payment's ladder climbs on; it is not retried forever.
 */
export function createPollProcessor(options: {
  ledger: Ledger;
  platform: PaymentDetailsSource;
  log: Logger;
}) {
  const { ledger, platform, log } = options;
  return async (job: Job<unknown>): Promise<ApplyResult | { outcome: 'not_found' }> => {
    const parsed = zPaymentPollJob.safeParse(job.data);
    if (!parsed.success) throw new UnrecoverableError(`invalid poll job: ${parsed.error.issues[0]?.message}`);
    const { paymentId, attempt } = parsed.data;
    const answer = await platform.getPaymentDetails(paymentId);
    if (answer.kind === 'not_found') {
      const { stale } = await ledger.recordPollMiss(
        paymentId,
        'the platform does not know this payment (404)',
      );
      log.warn('poll: platform does not know the payment', { paymentId, attempt, stale });
      return { outcome: 'not_found' };
    }
    const receivedAt = Date.now();
    const result = await ledger.apply({
      event: {
        eventId: `poll-${paymentId}-${attempt}-${receivedAt}`,
        source: 'poll',
        type: 'payment.details',
        keyId: null,
        signature: null,
        rawBody: JSON.stringify(answer.body),
        rawIndex: null,
        receivedAt,
      },
      reading: readPaymentDetails(answer.body),
    });
    const fields = { paymentId, attempt, outcome: result.outcome };
    if (result.outcome === 'invalid')
      throw new UnrecoverableError(`GetPaymentDetails answer invalid: ${result.reason}`);
    if (result.stateChanged)
      log.warn('drift: poll found what no webhook said', { ...fields, reason: result.reason });
    else log.info('poll applied', fields);
    if (result.stale) log.error('payment given up: no conclusive status, needs a human', fields);
    return result;
  };
}

export interface ReconcilerOptions {
  connection: Redis;
  ledger: Ledger;
  platform: PaymentDetailsSource;
  log: Logger;
  everyMs: number;
  sweepCap: number;
  /** Platform calls per second, across every scheduler process (BullMQ's Redis-backed limiter). */
  maxRps: number;
  /** @defaultValue 4 */
  pollConcurrency?: number;
}

export interface Reconciler {
  sweeps: Queue;
  polls: Queue<PaymentPollJob>;
  close(): Promise<void>;
}

/**
 * The sweep runs from a BullMQ job scheduler every `everyMs`; the sweep queue's global concurrency of 1 keeps
 * one sweep at a time across every scheduler process. Polls run on their own queue with a global rate limit.
 */
export async function startReconciler(options: ReconcilerOptions): Promise<Reconciler> {
  const { connection, ledger, log } = options;
  const sweeps = new Queue(RECONCILE_SWEEPS_QUEUE, { connection });
  const polls = new Queue<PaymentPollJob>(PAYMENT_POLLS_QUEUE, { connection });
  for (const queue of [sweeps, polls])
    queue.on('error', (error) => log.warn('queue error', { error: error.message }));
  await sweeps.setGlobalConcurrency(1);
  await sweeps.upsertJobScheduler(
    'reconcile-sweep',
    { every: options.everyMs },
    { name: 'sweep', opts: { removeOnComplete: 100, removeOnFail: 100 } },
  );
  const outage = createLedgerOutageGuard(ledger, log);
  const sweepWorker = new Worker(
    RECONCILE_SWEEPS_QUEUE,
    outage.processor(async () => sweepDuePayments({ ledger, polls, cap: options.sweepCap, log })),
    { connection, concurrency: 1 },
  );
  const pollWorker = new Worker(
    PAYMENT_POLLS_QUEUE,
    outage.processor(createPollProcessor({ ledger, platform: options.platform, log })),
    {
      connection,
      concurrency: options.pollConcurrency ?? 4,
      limiter: { max: options.maxRps, duration: 1000 },
    },
  );
  for (const worker of [sweepWorker, pollWorker]) {
    outage.watch(worker);
    worker.on('error', (error) => log.error('reconciler worker error', { error: error.message }));
  }
  pollWorker.on('failed', (job, error) =>
    log.warn('poll failed', {
      paymentId: (job?.data as PaymentPollJob | undefined)?.paymentId,
      error: error.message,
    }),
  );
  return {
    sweeps,
    polls,
    close: async () => {
      outage.stop();
      await Promise.all([sweepWorker.close(), pollWorker.close()]);
      await Promise.all([sweeps.close(), polls.close()]);
    },
  };
}

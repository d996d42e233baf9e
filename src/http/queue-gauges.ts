import type { Queue } from 'bullmq';
import { Gauge, type Registry } from 'prom-client';
import type { Logger } from '../log';

export const QUEUE_STATES = ['waiting', 'active', 'failed', 'delayed'] as const;

export interface QueueFigures {
  name: string;
  counts: Record<string, number>;
  /** Age of the job that has waited longest, in seconds; 0 when none waits. */
  oldestWaitingSeconds: number;
}

async function readQueue(queue: Queue, now: number): Promise<QueueFigures> {
  const counts = await queue.getJobCounts(...QUEUE_STATES);
  // FIFO jobs enter the wait list on the left and leave on the right: ascending order starts at the oldest.
  const [oldest] = await queue.getJobs(['waiting'], 0, 0, true);
  const oldestWaitingSeconds = oldest ? Math.max(0, (now - oldest.timestamp) / 1000) : 0;
  return { name: queue.name, counts, oldestWaitingSeconds };
}

async function within<T>(work: Promise<T>, timeoutMs: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer from Redis within ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Figures of every queue, read from Redis (so they count every process's jobs). When Redis does not answer
 * within `timeoutMs`, undefined and a log line: the scrape leaves the queue series out and the ledger's
 * figures still answer.
 */
export async function readQueueFigures(
  queues: readonly Queue[],
  timeoutMs: number,
  log: Logger,
): Promise<QueueFigures[] | undefined> {
  const now = Date.now();
  try {
    return await within(Promise.all(queues.map((queue) => readQueue(queue, now))), timeoutMs);
  } catch (error) {
    log.warn('queue metrics unavailable', { error: (error as Error).message });
    return undefined;
  }
}

export function registerQueueGauges(
  registry: Registry,
  figures: () => Promise<QueueFigures[] | undefined>,
): void {
  new Gauge({
    name: 'paystate_queue_jobs',
    help: 'BullMQ jobs by queue and state (waiting, active, failed, delayed), read at scrape time',
    labelNames: ['queue', 'state'],
    registers: [registry],
    async collect() {
      const read = await figures();
      this.reset();
      for (const queue of read ?? [])
        for (const state of QUEUE_STATES) this.set({ queue: queue.name, state }, queue.counts[state] ?? 0);
    },
  });
  new Gauge({
    name: 'paystate_queue_oldest_waiting_seconds',
    help: 'Seconds since the longest-waiting job of the queue was added (0 when none waits)',
    labelNames: ['queue'],
    registers: [registry],
    async collect() {
      const read = await figures();
      this.reset();
      for (const queue of read ?? []) this.set({ queue: queue.name }, queue.oldestWaitingSeconds);
    },
  });
}

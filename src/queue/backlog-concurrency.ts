import type { Worker } from 'bullmq';
import type { Logger } from '../log';

export interface BacklogConcurrencyOptions {
  /** Jobs at once while the worker keeps up. */
  base: number;
  /** Jobs at once while a backlog waits. */
  backlog: number;
  /** Waiting jobs from which the worker counts as behind. @defaultValue 100 */
  threshold?: number;
  /** How often the waiting jobs are counted. @defaultValue 250 ms */
  everyMs?: number;
}

export interface BacklogConcurrency {
  /** Counts the waiting jobs now and sets the worker's concurrency from the count. */
  check(): Promise<void>;
  stop(): void;
}

/**
 * Runs `worker` at `base` concurrency while it keeps up and at `backlog` while `threshold` or more jobs wait.
 * Why both: a BullMQ worker below its concurrency fetches jobs one Redis round trip at a time before it runs the
 * ones fetched, so a high concurrency lengthens each job's wait when the queue is nearly empty (bench:e2e p99
 * ~40 ms at 10, ~75 ms at 50); with a backlog, more jobs in flight share each ledger commit and the queue drains
 * faster. It drops back to `base` once the waiting jobs fall to a quarter of `threshold`, so a queue hovering
 * near the threshold does not flip the setting at every count.
 */
export function adaptConcurrencyToBacklog(
  worker: Worker,
  countWaiting: () => Promise<number>,
  log: Logger,
  options: BacklogConcurrencyOptions,
): BacklogConcurrency {
  const { base, backlog } = options;
  const threshold = options.threshold ?? 100;
  let counting: Promise<void> | undefined;
  let stopped = false;

  const set = (concurrency: number, waiting: number) => {
    if (worker.concurrency === concurrency) return;
    worker.concurrency = concurrency;
    log.info(
      concurrency === backlog
        ? 'backlog: worker concurrency raised'
        : 'caught up: worker concurrency lowered',
      {
        waiting,
        concurrency,
      },
    );
  };

  const count = async () => {
    let waiting: number;
    try {
      waiting = await countWaiting();
    } catch {
      // The count failed (connection closed at shutdown, a Redis error): keep the current setting. While Redis
      // is down the count simply waits, and no second count starts meanwhile.
      return;
    }
    if (stopped) return;
    if (waiting >= threshold) set(backlog, waiting);
    else if (waiting <= threshold / 4) set(base, waiting);
  };
  const check = () => (counting ??= count().finally(() => (counting = undefined)));

  const timer = setInterval(() => void check(), options.everyMs ?? 250);
  timer.unref();
  return {
    check,
    stop: () => {
      stopped = true;
      clearInterval(timer);
    },
  };
}

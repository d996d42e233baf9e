import { DelayedError, type Job, type Worker } from 'bullmq';
import { LedgerUnavailableError, type Ledger } from '../ledger';
import type { Logger } from '../log';

type Processor<T> = (job: Job<unknown>, token?: string) => Promise<T>;

export interface LedgerOutageGuard {
  /** Wraps a processor: a job that meets an unreachable ledger goes back to the queue as it was. */
  processor<T>(process: Processor<T>): Processor<T>;
  /** Workers paused while the ledger is unreachable and resumed when it answers again. */
  watch(worker: Worker): void;
  stop(): void;
}

/**
 * A lost database connection is not a bad event: the job is put back (delayed, no attempt spent, never dropped
 * into the failed set), the workers pause instead of spinning through the queue, and a probe resumes them when
 * the ledger answers again.
 */
export function createLedgerOutageGuard(
  ledger: Ledger,
  log: Logger,
  options: { probeEveryMs?: number; retryDelayMs?: number } = {},
): LedgerOutageGuard {
  const probeEveryMs = options.probeEveryMs ?? 1_000;
  const retryDelayMs = options.retryDelayMs ?? 2_000;
  const workers = new Set<Worker>();
  let probe: NodeJS.Timeout | undefined;
  let stopped = false;

  const probeUntilBack = () => {
    probe = setTimeout(async () => {
      try {
        await ledger.ping();
      } catch {
        if (!stopped) probeUntilBack();
        return;
      }
      probe = undefined;
      for (const worker of workers) if (!worker.closing) worker.resume();
      log.warn('ledger answers again: workers resumed');
    }, probeEveryMs);
  };

  const onOutage = (error: Error) => {
    if (probe || stopped) return;
    log.error('ledger unavailable: workers paused until it answers', { error: error.message });
    for (const worker of workers)
      worker
        .pause(true)
        .catch((pauseError: Error) => log.warn('pause failed', { error: pauseError.message }));
    probeUntilBack();
  };

  return {
    processor:
      <T>(process: Processor<T>): Processor<T> =>
      async (job, token) => {
        try {
          return await process(job, token);
        } catch (error) {
          if (!(error instanceof LedgerUnavailableError)) throw error;
          onOutage(error);
          await job.moveToDelayed(Date.now() + retryDelayMs, token);
          throw new DelayedError();
        }
      },
    watch: (worker) => void workers.add(worker),
    stop: () => {
      stopped = true;
      clearTimeout(probe);
    },
  };
}

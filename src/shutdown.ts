import type { Logger } from './log';

/**
 * Runs `close` once on SIGTERM or SIGINT and exits; exits 1 if closing takes longer than `timeoutMs`, so a
 * stuck dependency never keeps a deploy waiting forever.
 */
export function exitOnSignals(close: () => Promise<void>, options: { timeoutMs: number; log: Logger }): void {
  let closing = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (closing) return;
    closing = true;
    options.log.info('shutting down', { signal, timeoutMs: options.timeoutMs });
    const timer = setTimeout(() => {
      options.log.error('shutdown timed out; exiting', { timeoutMs: options.timeoutMs });
      process.exit(1);
    }, options.timeoutMs);
    timer.unref();
    close().then(
      () => {
        options.log.info('shut down cleanly');
        process.exit(0);
      },
      (error: Error) => {
        options.log.error('shutdown failed', { error: error.message });
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}

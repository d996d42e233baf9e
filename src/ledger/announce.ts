import type { Ledger } from './ledger';

/**
 * The same ledger, calling `announce` after each write that can add to the change feed, so that another
 * process's long-polls wake at once (see src/queue/change-signal.ts). Announcing a write that changed
 * nothing only costs the listeners one more read of the feed.
 */
export function announcingWrites(ledger: Ledger, announce: () => void): Ledger {
  const after =
    <A extends unknown[], R>(write: (...args: A) => Promise<R>) =>
    async (...args: A): Promise<R> => {
      const result = await write(...args);
      announce();
      return result;
    };
  return {
    ...ledger,
    apply: after(ledger.apply),
    registerPayment: after(ledger.registerPayment),
    releasePayment: after(ledger.releasePayment),
    recordPollMiss: after(ledger.recordPollMiss),
    replayEvent: after(ledger.replayEvent),
    rebuild: after(ledger.rebuild),
  };
}

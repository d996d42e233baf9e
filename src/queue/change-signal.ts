import type { Redis } from 'ioredis';

/**
 * Redis channel on which ledger writers announce "state changes committed", so that `GET /v1/changes`
 * long-polls in the web process answer at once instead of at their next poll of the ledger. A hint only:
 * the ledger stays the truth, and a long-poll still re-reads it on a slower timer, so a lost message (Redis
 * restarting, a write by the CLI) delays an answer and loses nothing.
 */
export const CHANGE_SIGNAL_CHANNEL = 'paystate:ledger-changed';

/** Announces commits, at most one PUBLISH per turn of the event loop however many commits it saw. */
export function createChangeAnnouncer(redis: Redis): () => void {
  let scheduled = false;
  return () => {
    if (scheduled) return;
    scheduled = true;
    setImmediate(() => {
      scheduled = false;
      redis.publish(CHANGE_SIGNAL_CHANNEL, '1').catch(() => undefined);
    });
  };
}

export interface Wait {
  /** Settles at the next announcement, or when the wait's time is up, whichever comes first. */
  done: Promise<void>;
  /** Settles it now and lets go of its timer. */
  cancel(): void;
}

export interface ChangeSignal {
  wait(timeoutMs: number): Wait;
  /** True once `close()` was called: long-polls answer what they have instead of waiting on. */
  readonly closed: boolean;
  /** Ends every wait at once (a stopping web process answers its long-polls) and unsubscribes. */
  close(): Promise<void>;
}

/** A wait that only a timer ends, for a web process without announcements. */
export function timerWait(timeoutMs: number): Wait {
  let cancel = () => {};
  const done = new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, timeoutMs);
    cancel = () => {
      clearTimeout(timer);
      resolve();
    };
  });
  return { done, cancel };
}

/**
 * Subscribes `subscriber`, a connection of its own (a subscribed connection can run no other command). Returns
 * at once: until the subscription is in place (Redis down at start), waits simply last their timeout.
 */
export function subscribeToChanges(subscriber: Redis, onError: (error: Error) => void): ChangeSignal {
  let waiters = new Set<() => void>();
  subscriber.on('message', () => {
    const woken = waiters;
    waiters = new Set();
    for (const wake of woken) wake();
  });
  subscriber.subscribe(CHANGE_SIGNAL_CHANNEL).catch(onError);
  let closed = false;
  return {
    wait: (timeoutMs) => {
      const wait = timerWait(closed ? 0 : timeoutMs);
      waiters.add(wait.cancel);
      void wait.done.then(() => waiters.delete(wait.cancel));
      return wait;
    },
    get closed() {
      return closed;
    },
    close: async () => {
      closed = true;
      for (const wake of [...waiters]) wake();
      await subscriber.quit().catch(() => subscriber.disconnect());
    },
  };
}

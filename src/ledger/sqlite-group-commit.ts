import type Database from 'better-sqlite3';
import type { PaymentRowCache } from './sqlite-payment-cache';

interface Queued {
  work: () => unknown;
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
}

type Outcome = { ok: true; value: unknown } | { ok: false; error: unknown };

export interface GroupCommit {
  /** Queues `work` (synchronous) for the next batch; settles after that batch's COMMIT. */
  run<T>(work: () => T): Promise<T>;
  /** Runs the queued work now (other ledger calls do, so that calls take effect in call order). */
  flush(): void;
}

/**
 * Group commit: the work queued during one turn of the event loop (the status worker's concurrent applies)
 * runs in call order in one IMMEDIATE transaction, and one COMMIT writes them all (with a transaction per
 * event, its COMMIT cost more CPU than its statements). Why this keeps per-event semantics:
 * - each piece sees the effects of the pieces before it (same connection, same transaction, in order), so the
 *   dedupe gate and the ordering rule decide exactly as if each had committed alone;
 * - a piece that throws rolls the whole batch back, and the batch runs again with each piece in its own
 *   SAVEPOINT: the one that throws is rolled back to its savepoint and only its promise rejects. Pieces are
 *   synchronous database work on their own inputs, so running them again after the rollback decides the same.
 *   Savepoints are kept off the common path: SQLite copies each page a piece changes into a sub-journal, which
 *   spills to a temporary file (~6 more writes per event);
 * - no promise settles before the COMMIT: when BEGIN (SQLITE_BUSY) or COMMIT fails, or SQLite rolled the whole
 *   transaction back (disk full, I/O error), every promise of the batch rejects and none of it is kept, so
 *   BullMQ retries all of those jobs.
 */
export function createGroupCommit(sqlite: Database.Database, cache?: PaymentRowCache): GroupCommit {
  let queue: Queued[] = [];
  let pieceThrew = false;
  const inOneGo = sqlite.transaction((batch: Queued[]) => {
    cache?.begin();
    return batch.map((queued): Outcome => {
      try {
        return { ok: true, value: queued.work() };
      } catch (error) {
        pieceThrew = true;
        throw error;
      }
    });
  });
  // Called inside a transaction, a better-sqlite3 transaction function runs in a savepoint.
  const inSavepoint = sqlite.transaction((work: () => unknown) => work());
  const pieceBySavepoint = sqlite.transaction((batch: Queued[]) =>
    batch.map((queued): Outcome => {
      try {
        return { ok: true, value: inSavepoint(queued.work) };
      } catch (error) {
        if (!sqlite.inTransaction) throw error;
        return { ok: false, error };
      }
    }),
  );
  const runBatch = (batch: Queued[]): Outcome[] => {
    pieceThrew = false;
    let outcomes: Outcome[];
    try {
      outcomes = inOneGo.immediate(batch);
    } catch (error) {
      // Off before the pieces run again one by one: a piece rolled back to its savepoint may have cached its row.
      cache?.end(false);
      if (!pieceThrew) throw error;
      return pieceBySavepoint.immediate(batch);
    }
    cache?.end(true);
    return outcomes;
  };

  const flush = () => {
    const batch = queue;
    queue = [];
    if (batch.length === 0) return;
    let outcomes: Outcome[];
    try {
      outcomes = runBatch(batch);
    } catch (error) {
      for (const queued of batch) queued.reject(error);
      return;
    }
    outcomes.forEach((outcome, i) =>
      outcome.ok ? batch[i]!.resolve(outcome.value) : batch[i]!.reject(outcome.error),
    );
  };

  return {
    run: <T>(work: () => T) =>
      new Promise<T>((resolve, reject) => {
        if (queue.length === 0) setImmediate(flush);
        queue.push({ work, resolve: resolve as (value: unknown) => void, reject });
      }),
    flush,
  };
}

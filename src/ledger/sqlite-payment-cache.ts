import type Database from 'better-sqlite3';
import type { Payment } from './ledger';

export interface PaymentRowCache {
  /** At the start of a group-commit batch, inside its write transaction: from here the cache may answer. */
  begin(): void;
  /** When the batch ends, committed or not: from here the cache answers nothing until the next `begin`. */
  end(committed: boolean): void;
  get(paymentId: string): Payment | undefined;
  /** A row as it now stands in this transaction (just read, inserted or updated). */
  put(payment: Payment): void;
}

/**
 * The payment rows the status worker's batches last read or wrote. A payment's webhooks come in bursts (pending,
 * authorised, captured, and again when re-sent), and reading its row back cost ~7 µs of each event's ~50 µs in
 * the ledger. Write-through, and trusted only inside a batch that checked nothing else wrote since:
 * - another connection's commit (the scheduler, the CLI, another worker) moves `PRAGMA data_version`; the batch
 *   holds the write lock (BEGIN IMMEDIATE), so nothing else can commit while the cache answers;
 * - any other write on this connection (an operator's replay, a dry run rolled back) moves `total_changes()`;
 * - so does a batch that did not commit as it ran, since it cached only rows it read or wrote (a row only read
 *   is the committed one); the cache is off while its pieces run again one by one.
 * Rows are frozen: they are shared with the apply code, which builds new rows and never changes one it read.
 * They must be the rows as stored: the store writes and reads each column as it holds it (see sqlTable).
 */
export function createPaymentRowCache(sqlite: Database.Database, capacity = 4096): PaymentRowCache {
  const rows = new Map<string, Payment>();
  const dataVersion = sqlite.prepare('PRAGMA data_version').pluck();
  const totalChanges = sqlite.prepare('SELECT total_changes()').pluck();
  let seenVersion: unknown;
  let seenChanges: unknown;
  let active = false;
  return {
    begin() {
      const version = dataVersion.get();
      if (version !== seenVersion || totalChanges.get() !== seenChanges) rows.clear();
      seenVersion = version;
      active = true;
    },
    end(committed) {
      active = false;
      if (committed) seenChanges = totalChanges.get();
    },
    get: (paymentId) => (active ? rows.get(paymentId) : undefined),
    put(payment) {
      if (!active) return;
      if (rows.size >= capacity && !rows.has(payment.id)) rows.delete(rows.keys().next().value!);
      rows.set(payment.id, Object.freeze(payment));
    },
  };
}

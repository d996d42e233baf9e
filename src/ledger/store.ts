import type { Payment, Refund } from './ledger';
import type { drifts, EventOutcome, events, stateChanges } from './schema';

export type EventColumns = Omit<typeof events.$inferInsert, 'seq' | 'deliveries'>;
export type ChangeColumns = Omit<typeof stateChanges.$inferInsert, 'seq'>;
export type DriftColumns = Omit<typeof drifts.$inferInsert, 'seq'>;

/**
 * Every read and write the ledger's write path makes, inside one transaction. The logic (apply, register,
 * release, replay) is written once against this vocabulary; each database implements it: SQLite with prepared
 * statements that answer synchronously, PostgreSQL with queries that answer with a promise.
 */
export interface LedgerStore {
  /** The dedupe gate. */
  eventById(eventId: string): { seq: number; outcome: EventOutcome; paymentId: string | null } | undefined;
  countDelivery(seq: number): void;
  /** Returns the new event's seq. */
  insertEvent(columns: EventColumns): number;
  updateEvent(seq: number, columns: EventColumns): void;
  paymentById(id: string): Payment | undefined;
  insertPayment(payment: Payment): void;
  /** Writes a row read in this transaction (`before`) and changed in memory (`after`). */
  updatePayment(before: Payment, after: Payment): void;
  /** Puts a change on the feed (in commit order). */
  insertChange(change: ChangeColumns): void;
  insertDrift(drift: DriftColumns): void;
  refundById(id: string): Refund | undefined;
  insertRefund(refund: Refund): void;
  updateRefund(before: Refund, after: Refund): void;
  refundsByBase(base: string): { id: string; previous: string | null }[];
  /** Sum of the refunded refunds' amounts of a payment. */
  refundedTotal(paymentId: string): number;
  /** How many of a payment's events are not `failed` (rebuild: did an event land or get retried since?). */
  eventCountOf(paymentId: string): number;
  /** The payment of an id base most likely to be refunded: the highest captured total first. */
  paymentByBase(base: string): Payment | undefined;
  paymentByMerchantReference(merchantReference: string): Payment | undefined;
  /** Links refunds (and their events) to a payment. */
  linkRefunds(refundIds: string[], paymentId: string): void;
}

type Method = keyof LedgerStore;
type Args<K extends Method> = Parameters<LedgerStore[K]>;
type Answer<K extends Method> = ReturnType<LedgerStore[K]>;

export interface StoreCall<K extends Method = Method> {
  method: K;
  args: Args<K>;
}

/** Logic that talks to the store: a generator that yields store calls and is handed back their answers. */
export type Effect<R> = Generator<StoreCall, R, unknown>;

/** One store call, for `yield*` inside an Effect: `const payment = yield* call('paymentById', id)`. */
export function* call<K extends Method>(
  method: K,
  ...args: Args<K>
): Generator<StoreCall, Answer<K>, unknown> {
  return (yield { method, args } as StoreCall) as Answer<K>;
}

type Invoke = (...args: unknown[]) => unknown;

/** Runs an effect against a store that answers synchronously (SQLite, inside its transaction). */
export function runSync<R>(effect: Effect<R>, store: LedgerStore): R {
  let step = effect.next();
  while (!step.done) {
    const { method, args } = step.value;
    step = effect.next((store[method] as Invoke).apply(store, args));
  }
  return step.value;
}

/** The same store, each answer a promise (PostgreSQL). */
export type AsyncLedgerStore = {
  [K in Method]: (...args: Args<K>) => Promise<Answer<K>>;
};

/** Runs an effect against a store whose answers are promises (PostgreSQL, inside its transaction). */
export async function runAsync<R>(effect: Effect<R>, store: AsyncLedgerStore): Promise<R> {
  let step = effect.next();
  while (!step.done) {
    const { method, args } = step.value;
    step = effect.next(await (store[method] as Invoke).apply(store, args));
  }
  return step.value;
}

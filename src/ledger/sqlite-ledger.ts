import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { and, asc, count, eq, isNotNull, isNull, lt, lte, max } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/better-sqlite3';
import { migrate } from 'drizzle-orm/better-sqlite3/migrator';
import type {
  ApplyInput,
  ApplyResult,
  ChangeWithPayment,
  Ledger,
  LedgerCounts,
  Payment,
  PaymentView,
  StateChange,
} from './ledger';
import * as schema from './schema';
import { drifts, events, payments, refunds, stateChanges } from './schema';
import { DEFAULT_CHECK_POLICY, type CheckPolicy } from './check-schedule';
import { applyEvent, recordPollMiss } from './apply';
import { eventColumns } from './event-row';
import { rebuildLedger, replayStoredEvent } from './operations';
import { register, release } from './registration';
import { inTransaction, listActionsQuery, listEventsQuery, recordActionQuery } from './sqlite-operations';
import { createPaymentRowCache } from './sqlite-payment-cache';
import { createGroupCommit, type GroupCommit } from './sqlite-group-commit';
import { createSqliteStore, sqlTable, type Db } from './sqlite-store';
import { startCheckpointer } from './sqlite-checkpointer';
import { startCountsReader, type SqlQuery } from './sqlite-counts-reader';
import { runSync, type Effect } from './store';

export interface OpenSqliteLedgerOptions {
  /** File path of the ledger; its folder is created when missing. */
  path: string;
  /**
   * How long a writer waits for another process's write lock before SQLITE_BUSY.
   * @defaultValue 5000
   */
  busyTimeoutMs?: number;
  /** Clock, injectable for tests. */
  now?: () => number;
  /** When the reconciler checks inconclusive payments. @defaultValue DEFAULT_CHECK_POLICY */
  checkPolicy?: CheckPolicy;
  /**
   * Checkpoint the WAL from a thread of its own every this many ms, instead of inside the commit that fills it
   * (see sqlite-checkpointer.ts): for the process that does most of the writing, the status worker.
   * @defaultValue undefined (SQLite's automatic checkpoints)
   */
  backgroundCheckpointMs?: number;
  /**
   * Run `counts()` on a thread of its own (see sqlite-counts-reader.ts): for the web process, whose metrics
   * scrapes would otherwise stall the receiver while the counts read whole tables.
   * @defaultValue false
   */
  countsOffThread?: boolean;
}

/** Finds drizzle/ from both src/ledger (ts) and dist/src/ledger (built). */
function migrationsFolder(): string {
  for (let dir = __dirname; dir !== path.dirname(dir); dir = path.dirname(dir)) {
    const candidate = path.join(dir, 'drizzle');
    if (fs.existsSync(path.join(candidate, 'meta', '_journal.json'))) return candidate;
  }
  throw new Error(`no drizzle/ migrations folder found above ${__dirname}`);
}

/**
 * drizzle's migrator reads the applied migrations before it takes the write lock, so processes starting together
 * on a new file can both try the same migration; the loser fails, and on a second pass finds it applied.
 */
function migrateWithRetry(db: Db, attempts = 5): void {
  for (let attempt = 1; ; attempt++) {
    try {
      migrate(db, { migrationsFolder: migrationsFolder() });
      return;
    } catch (error) {
      if (attempt >= attempts) throw error;
    }
  }
}

/**
 * The change feed's page, read after every announced commit by every long-poll: prepared once, on
 * better-sqlite3 directly (a page of ~2 changes: 120–150 µs through drizzle, 26–36 µs this way).
 * The limit is bound as `cast(? as integer)`, not a bare `?`: SQLite's planner reads a bare LIMIT parameter's
 * value, so binding it (every run) made SQLite compile the statement again each time (~50 µs of the above).
 */
function prepareChangesAfter(sqlite: Database.Database) {
  const c = sqlTable(stateChanges);
  const p = sqlTable(payments);
  const seq = `${c.name}.${c.column('seq')}`;
  const page = sqlite
    .prepare(
      `select ${c.qualified}, ${p.qualified} from ${c.name} ` +
        `inner join ${p.name} on ${p.name}.${p.column('id')} = ${c.name}.${c.column('paymentId')} ` +
        `where ${seq} > ? order by ${seq} asc limit cast(? as integer)`,
    )
    .raw();
  return (afterSeq: number, limit: number): ChangeWithPayment[] =>
    page.all(afterSeq, limit).map((values) => ({
      ...c.decode<StateChange>(values)!,
      payment: p.decode<Payment>(values, c.width)!,
    }));
}

export function openSqliteLedger(options: OpenSqliteLedgerOptions): Ledger {
  fs.mkdirSync(path.dirname(path.resolve(options.path)), { recursive: true });
  const sqlite = new Database(options.path);
  sqlite.pragma('journal_mode = WAL');
  sqlite.pragma('synchronous = NORMAL');
  sqlite.pragma('foreign_keys = ON');
  sqlite.pragma(`busy_timeout = ${options.busyTimeoutMs ?? 5000}`);
  const db = drizzle(sqlite, { schema });
  migrateWithRetry(db);
  const now = options.now ?? Date.now;
  const policy = options.checkPolicy ?? DEFAULT_CHECK_POLICY;
  const paymentCache = createPaymentRowCache(sqlite);
  const store = createSqliteStore(db, sqlite, paymentCache);
  const group = createGroupCommit(sqlite, paymentCache);
  const checkpointer =
    options.backgroundCheckpointMs === undefined
      ? undefined
      : startCheckpointer(sqlite, options.backgroundCheckpointMs);
  const countsReader = options.countsOffThread
    ? startCountsReader(
        sqlite.name,
        Object.fromEntries(
          Object.entries(countQueries(db)).map(([name, query]) => [name, query.toSQL()]),
        ) as Record<keyof CountRows, SqlQuery>,
      )
    : undefined;

  const changesAfter = prepareChangesAfter(sqlite);
  const lastSeq = sqlite.prepare('SELECT seq FROM state_changes ORDER BY seq DESC LIMIT 1');

  // better-sqlite3 transactions must stay synchronous: an async callback would commit before its awaits.
  const writing = <T>(work: (at: number) => T): T =>
    db.transaction(() => work(now()), { behavior: 'immediate' });
  const run = <T>(effect: Effect<T>): T => runSync(effect, store);

  const ledger: Ledger = {
    apply: (input: ApplyInput): Promise<ApplyResult> => {
      const at = now();
      return group.run(() => run(applyEvent(input, at, policy)));
    },
    recordFailedEvent: async (event, error) => {
      db.insert(events)
        .values(eventColumns(event, { outcome: 'failed', reason: error, paymentId: null }, now()))
        // An existing row was reached by processing; its outcome stays.
        .onConflictDoNothing({ target: events.eventId })
        .run();
    },
    getPayment: async (paymentId) => getPaymentView(db, paymentId),
    registerPayment: async (registration) =>
      writing((at) => {
        const result = run(register(registration, at, policy));
        return { ...result, payment: getPaymentView(db, registration.paymentId)! };
      }),
    releasePayment: async (paymentId, releaseOn) =>
      writing((at) => {
        const result = run(release(paymentId, releaseOn, at));
        if (result.outcome === 'not_found') return result;
        return { ...result, payment: getPaymentView(db, paymentId)! };
      }),
    listPaymentsByMerchantReference: async (merchantReference) =>
      db
        .select({ id: payments.id })
        .from(payments)
        .where(eq(payments.merchantReference, merchantReference))
        .orderBy(asc(payments.firstSeenAt), asc(payments.id))
        .all()
        .map(({ id }) => getPaymentView(db, id)!),
    lastChangeSeq: async () => (lastSeq.get() as { seq: number } | undefined)?.seq ?? 0,
    listChanges: async (afterSeq, limit) => changesAfter(afterSeq, limit),
    counts: async () => (countsReader ? countsOf(await countsReader.read()) : countLedger(db)),
    listEvents: async (filter) => listEventsQuery(db, filter),
    recordAction: async (action) => recordActionQuery(db, action, now()),
    listActions: async (limit) => listActionsQuery(db, limit),
    replayEvent: async (eventId, replayOptions) => {
      const original = db.select().from(events).where(eq(events.eventId, eventId)).get();
      if (!original) return { outcome: 'not_found', eventId };
      const { rawBody } = original;
      if (rawBody === null) return { outcome: 'no_raw_body', eventId };
      return inTransaction(db, replayOptions.dryRun, () =>
        run(replayStoredEvent({ ...original, rawBody }, replayOptions, now(), policy)),
      );
    },
    rebuild: async (rebuildOptions) =>
      rebuildLedger(
        {
          listEvents: async (filter) => listEventsQuery(db, filter),
          purgedPaymentIds: async () => purgedPaymentIds(db),
          activePayments: async () =>
            db.select().from(payments).where(isNull(payments.staleAt)).orderBy(asc(payments.id)).all(),
          // One IMMEDIATE transaction: the write lock holds every payment against the other writers.
          write: async (_paymentIds, effect) => inTransaction(db, false, () => run(effect())),
        },
        (file) => openSqliteLedger({ path: file, checkPolicy: policy }),
        rebuildOptions,
        now,
        policy,
      ),
    listDueChecks: async (at, limit) =>
      dueChecksQuery(db, at, limit)
        .all()
        .map((row) => ({ ...row, nextCheckAt: row.nextCheckAt! })),
    recordPollMiss: async (paymentId, reason) =>
      writing((at) => run(recordPollMiss(paymentId, reason, at, policy))),
    listDrifts: async (paymentId) =>
      paymentId === undefined
        ? db.select().from(drifts).orderBy(asc(drifts.seq)).all()
        : db.select().from(drifts).where(eq(drifts.paymentId, paymentId)).orderBy(asc(drifts.seq)).all(),
    getEvent: async (eventId) => db.select().from(events).where(eq(events.eventId, eventId)).get(),
    listPaymentEvents: async (paymentId) =>
      db.select().from(events).where(eq(events.paymentId, paymentId)).orderBy(asc(events.seq)).all(),
    listStateChanges: async (paymentId) =>
      db
        .select()
        .from(stateChanges)
        .where(eq(stateChanges.paymentId, paymentId))
        .orderBy(asc(stateChanges.seq))
        .all(),
    listRefunds: async (paymentId) =>
      db.select().from(refunds).where(eq(refunds.paymentId, paymentId)).orderBy(asc(refunds.id)).all(),
    purgeRawBodies: async (receivedBefore) =>
      db
        .update(events)
        .set({ rawBody: null })
        .where(and(lt(events.receivedAt, receivedBefore), isNotNull(events.rawBody)))
        .run().changes,
    ping: async () => {
      sqlite.prepare('select 1').get();
    },
    close: async () => {
      await checkpointer?.stop();
      await countsReader?.stop();
      sqlite.close();
    },
  };
  return inCallOrder(ledger, group);
}

/** Every call but apply first runs the applies queued before it, so that calls take effect in call order. */
function inCallOrder(ledger: Ledger, group: GroupCommit): Ledger {
  const ordered: Record<string, unknown> = {};
  for (const [name, method] of Object.entries(ledger) as [string, (...args: unknown[]) => unknown][]) {
    ordered[name] =
      name === 'apply'
        ? method
        : (...args: unknown[]) => {
            group.flush();
            return method(...args);
          };
  }
  return ordered as unknown as Ledger;
}

function getPaymentView(db: Db, paymentId: string): PaymentView | undefined {
  const payment = db.select().from(payments).where(eq(payments.id, paymentId)).get();
  if (!payment) return undefined;
  const stats = db
    .select({ eventCount: count(), lastEventAt: max(events.receivedAt) })
    .from(events)
    .where(eq(events.paymentId, paymentId))
    .get();
  return { ...payment, eventCount: stats?.eventCount ?? 0, lastEventAt: stats?.lastEventAt ?? null };
}

/** The queries behind `counts()`, read as arrays of values (the counting thread runs their SQL). */
function countQueries(db: Db) {
  return {
    eventsByOutcome: db.select({ outcome: events.outcome, n: count() }).from(events).groupBy(events.outcome),
    paymentsByStage: db.select({ stage: payments.stage, n: count() }).from(payments).groupBy(payments.stage),
    reversed: db.select({ n: count() }).from(payments).where(eq(payments.reversedAfterRelease, true)),
    stale: db.select({ n: count() }).from(payments).where(isNotNull(payments.staleAt)),
    drifts: db.select({ n: count() }).from(drifts),
  };
}
type CountRows = Record<keyof ReturnType<typeof countQueries>, unknown[][]>;

function countsOf(rows: CountRows): LedgerCounts {
  const single = (name: 'reversed' | 'stale' | 'drifts') => Number(rows[name][0]?.[0] ?? 0);
  return {
    eventsByOutcome: Object.fromEntries(rows.eventsByOutcome.map(([outcome, n]) => [outcome, Number(n)])),
    paymentsByStage: Object.fromEntries(rows.paymentsByStage.map(([stage, n]) => [stage, Number(n)])),
    reversedAfterRelease: single('reversed'),
    stale: single('stale'),
    drifts: single('drifts'),
  };
}

function countLedger(db: Db): LedgerCounts {
  const queries = countQueries(db);
  const rows = Object.fromEntries(
    Object.entries(queries).map(([name, query]) => [name, query.values() as unknown[][]]),
  ) as CountRows;
  return countsOf(rows);
}

function purgedPaymentIds(db: Db): string[] {
  return db
    .selectDistinct({ paymentId: events.paymentId })
    .from(events)
    .where(and(isNull(events.rawBody), isNotNull(events.rawBytes), isNotNull(events.paymentId)))
    .all()
    .map((row) => row.paymentId!);
}

/** The sweep's query: only due rows, read through payments_next_check_idx (checked by EXPLAIN QUERY PLAN). */
export function dueChecksQuery(db: Db, at: number, limit: number) {
  return db
    .select({
      paymentId: payments.id,
      checkAttempts: payments.checkAttempts,
      nextCheckAt: payments.nextCheckAt,
    })
    .from(payments)
    .where(lte(payments.nextCheckAt, at))
    .orderBy(asc(payments.nextCheckAt))
    .limit(limit);
}

import fs from 'node:fs';
import path from 'node:path';
import { and, asc, count, desc, eq, gt, isNotNull, isNull, lt, lte, max, sql } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/node-postgres';
import { migrate } from 'drizzle-orm/node-postgres/migrator';
import pg, { Pool, type PoolConfig } from 'pg';
import { applyEvent, recordPollMiss } from './apply';
import { DEFAULT_CHECK_POLICY, type CheckPolicy } from './check-schedule';
import { eventColumns } from './event-row';
import { eventFilterWhere } from './event-filter';
import {
  LedgerUnavailableError,
  type ApplyInput,
  type EventFilter,
  type Ledger,
  type LedgerCounts,
  type PaymentView,
} from './ledger';
import { paymentBaseOf } from './observation';
import { operatorActionRow, rebuildLedger, replayPaymentId, replayStoredEvent } from './operations';
import * as pgSchema from './pg-schema';
import { drifts, events, operatorActions, payments, refunds, stateChanges } from './pg-schema';
import { createPgStore, type PgDb } from './pg-store';

type PgTx = Parameters<Parameters<PgDb['transaction']>[0]>[0];
import { register, release } from './registration';
import { openSqliteLedger } from './sqlite-ledger';
import { runAsync, type Effect } from './store';

export interface OpenPgLedgerOptions {
  /** postgres://user:password@host:port/database */
  url: string;
  /** Connections per process. @defaultValue 10 */
  poolSize?: number;
  /** A statement running longer is cancelled by the server. @defaultValue 5000 */
  statementTimeoutMs?: number;
  /** TLS to the server: off, encrypted without checking the certificate, or verified. @defaultValue 'off' */
  tls?: 'off' | 'require' | 'verify';
  /** PEM file of the CA that signed the server's certificate (with tls 'verify'). */
  tlsCaFile?: string;
  now?: () => number;
  checkPolicy?: CheckPolicy;
  /** Told when an idle pooled connection breaks (the pool replaces it). */
  onConnectionError?: (error: Error) => void;
}

/** Session-level advisory lock that serialises migrations of processes starting together. */
const MIGRATION_LOCK = 7_001_000;
/** Transaction errors worth running the whole transaction again for: deadlock, serialisation, a racing insert. */
const RETRY_CODES = new Set(['40P01', '40001', '23505']);
const MAX_TRANSACTION_ATTEMPTS = 5;
/** Connection-level failures: the ledger is unreachable, not the request wrong. SQLSTATE class 08 and 57P0x. */
const UNAVAILABLE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
]);
const UNAVAILABLE_MESSAGES =
  /Connection terminated|connection timeout|timeout exceeded when trying to connect|Client has encountered a connection error|terminating connection/i;

function pgMigrationsFolder(): string {
  for (let dir = __dirname; dir !== path.dirname(dir); dir = path.dirname(dir)) {
    const candidate = path.join(dir, 'drizzle', 'pg');
    if (fs.existsSync(path.join(candidate, 'meta', '_journal.json'))) return candidate;
  }
  throw new Error(`no drizzle/pg/ migrations folder found above ${__dirname}`);
}

type DriverError = { message: string; code?: string; cause?: unknown };

/** Duck-typed: errors from node's own modules may come from another realm (a vm context) than our `Error`. */
const isErrorLike = (value: unknown): value is DriverError =>
  typeof value === 'object' && value !== null && typeof (value as DriverError).message === 'string';

/** The driver's error under drizzle's wrapper (whose message carries the query's parameters: never logged). */
function rootError(error: unknown): DriverError {
  let current = error;
  while (isErrorLike(current) && isErrorLike(current.cause)) current = current.cause;
  return isErrorLike(current) ? current : { message: String(current) };
}

function isUnavailable(error: DriverError): boolean {
  const code = error.code ?? '';
  return (
    UNAVAILABLE_CODES.has(code) ||
    code.startsWith('08') ||
    code.startsWith('57P') ||
    UNAVAILABLE_MESSAGES.test(error.message)
  );
}

/** Rethrows a database error without drizzle's parameter list; connection failures as LedgerUnavailableError. */
function ledgerError(error: unknown): Error {
  if (error instanceof LedgerUnavailableError) return error;
  const root = rootError(error);
  const code = root.code ? ` (${root.code})` : '';
  if (isUnavailable(root)) return new LedgerUnavailableError(`ledger unavailable: ${root.message}${code}`);
  // Without a driver error underneath, drizzle's own message would carry the parameters: keep only its first line.
  const message = root.message.startsWith('Failed query:') ? 'query failed' : root.message;
  const clean = new Error(`ledger: ${message}${code}`);
  Object.assign(clean, { code: root.code });
  return clean;
}

function poolConfig(options: OpenPgLedgerOptions): PoolConfig {
  const tls = options.tls ?? 'off';
  return {
    connectionString: options.url,
    max: options.poolSize ?? 10,
    statement_timeout: options.statementTimeoutMs ?? 5_000,
    // A transaction left open by a stuck process must not hold its payment's lock for ever.
    idle_in_transaction_session_timeout: 60_000,
    connectionTimeoutMillis: 5_000,
    application_name: 'paystate',
    // int8 (sequences, epoch milliseconds, amounts) as numbers, as drizzle's bigint columns in 'number' mode read
    // them: the raw statements of pg-store.ts return the same row types. All stay far below 2^53.
    types: {
      getTypeParser: ((oid: number, format?: string) =>
        oid === pg.types.builtins.INT8 ? Number : pg.types.getTypeParser(oid, format as 'text')) as never,
    },
    ssl:
      tls === 'off'
        ? false
        : {
            rejectUnauthorized: tls === 'verify',
            ...(options.tlsCaFile ? { ca: fs.readFileSync(options.tlsCaFile, 'utf8') } : {}),
          },
  };
}

export async function openPgLedger(options: OpenPgLedgerOptions): Promise<Ledger> {
  const pool = new Pool(poolConfig(options));
  // An idle connection that breaks emits here; unhandled, it would end the process.
  pool.on('error', (error) => options.onConnectionError?.(error));
  // The pool listens on a client only while it is idle. One that breaks while checked out (a transaction between
  // two of its queries when the server dies) emits 'error' on the client itself, which would end the process
  // too. The query in flight, or the next one, fails as LedgerUnavailableError, and the pool drops the client
  // when it is released; nothing more to do here.
  pool.on('connect', (client) => client.on('error', () => {}));
  const db: PgDb = drizzle(pool, { schema: pgSchema });
  const now = options.now ?? Date.now;
  const policy = options.checkPolicy ?? DEFAULT_CHECK_POLICY;
  try {
    await migrateOnce(pool);
  } catch (error) {
    await pool.end();
    throw ledgerError(error);
  }

  /**
   * Runs an effect in one transaction, after locking the payments' id bases it writes (sorted, so two writers
   * never wait on each other in opposite orders): per-payment serialisation across processes and hosts, also
   * for a payment no row exists for yet. A deadlock or a racing insert runs the whole transaction again.
   */
  async function write<T>(
    lockKeys: string[],
    effect: () => Effect<T>,
    options: { dryRun?: boolean } = {},
  ): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      const client = await pool.connect();
      let broken: unknown;
      try {
        // BEGIN and the locks in one round trip (simple protocol, keys escaped as literals).
        const locks = [...new Set(lockKeys)]
          .sort()
          .map((key) => `select pg_advisory_xact_lock(hashtextextended(${client.escapeLiteral(key)}, 0));`);
        await client.query(['begin;', ...locks].join(' '));
        const store = createPgStore(client);
        const result = await runAsync(effect(), store);
        await store.writeChanges();
        await client.query(options.dryRun ? 'rollback' : 'commit');
        return result;
      } catch (error) {
        await client.query('rollback').catch((rollbackError: unknown) => (broken = rollbackError));
        const root = rootError(error);
        if (attempt < MAX_TRANSACTION_ATTEMPTS && RETRY_CODES.has(root.code ?? '')) continue;
        throw error;
      } finally {
        // A connection whose ROLLBACK failed is in an unknown state: the pool must not hand it out again.
        client.release(broken instanceof Error ? broken : broken === undefined ? undefined : true);
      }
    }
  }

  const ledger: Ledger = {
    apply: async (input) => write([applyLockKey(input)], () => applyEvent(input, now(), policy)),
    recordFailedEvent: async (event, error) => {
      await db
        .insert(events)
        .values(eventColumns(event, { outcome: 'failed', reason: error, paymentId: null }, now()))
        .onConflictDoNothing({ target: events.eventId });
    },
    getPayment: async (paymentId) => getPaymentView(db, paymentId),
    registerPayment: async (registration) => {
      const result = await write([paymentBaseOf(registration.paymentId)], () =>
        register(registration, now(), policy),
      );
      return { ...result, payment: (await getPaymentView(db, registration.paymentId))! };
    },
    releasePayment: async (paymentId, releaseOn) => {
      const result = await write([paymentBaseOf(paymentId)], () => release(paymentId, releaseOn, now()));
      if (result.outcome === 'not_found') return result;
      return { ...result, payment: (await getPaymentView(db, paymentId))! };
    },
    listPaymentsByMerchantReference: async (merchantReference) => {
      const rows = await db
        .select({ id: payments.id })
        .from(payments)
        .where(eq(payments.merchantReference, merchantReference))
        .orderBy(asc(payments.firstSeenAt), asc(payments.id));
      return Promise.all(rows.map(async ({ id }) => (await getPaymentView(db, id))!));
    },
    lastChangeSeq: async () => {
      // Through the primary key's index, like SQLite's; under the feed lock a seq is visible only once every
      // lower one is, so a seq above the cursor means listChanges will find it.
      const { rows } = await pool.query<{ seq: number | null }>('select max(seq) as seq from state_changes');
      return rows[0]?.seq ?? 0;
    },
    listChanges: async (afterSeq, limit) =>
      (
        await db
          .select()
          .from(stateChanges)
          .innerJoin(payments, eq(payments.id, stateChanges.paymentId))
          .where(gt(stateChanges.seq, afterSeq))
          .orderBy(asc(stateChanges.seq))
          .limit(limit)
      ).map((row) => ({ ...row.state_changes, payment: row.payments })),
    counts: async () => countLedger(db),
    listEvents: async (filter) => listEventsQuery(db, filter),
    recordAction: async (input) =>
      (await db.insert(operatorActions).values(operatorActionRow(input, now())).returning())[0]!,
    listActions: async (limit) =>
      db.select().from(operatorActions).orderBy(desc(operatorActions.id)).limit(limit),
    replayEvent: async (eventId, replayOptions) => {
      const [original] = await db.select().from(events).where(eq(events.eventId, eventId));
      if (!original) return { outcome: 'not_found', eventId };
      const { rawBody } = original;
      if (rawBody === null) return { outcome: 'no_raw_body', eventId };
      const paymentId = replayPaymentId(original);
      return write(
        [paymentId ? paymentBaseOf(paymentId) : `event:${eventId}`],
        () => replayStoredEvent({ ...original, rawBody }, replayOptions, now(), policy),
        { dryRun: replayOptions.dryRun },
      );
    },
    rebuild: async (rebuildOptions) =>
      rebuildLedger(
        {
          listEvents: async (filter) => listEventsQuery(db, filter),
          purgedPaymentIds: async () =>
            (
              await db
                .selectDistinct({ paymentId: events.paymentId })
                .from(events)
                .where(and(isNull(events.rawBody), isNotNull(events.rawBytes), isNotNull(events.paymentId)))
            ).map((row) => row.paymentId!),
          activePayments: async () =>
            db.select().from(payments).where(isNull(payments.staleAt)).orderBy(asc(payments.id)),
          write: async (paymentIds, effect) => write(paymentIds.map(paymentBaseOf), effect),
        },
        // The recomputation is scratch work: an embedded SQLite file, whatever the ledger's own database.
        (file) => openSqliteLedger({ path: file, checkPolicy: policy }),
        rebuildOptions,
        now,
        policy,
      ),
    listDueChecks: async (at, limit) =>
      // Rows a writer holds right now are skipped, not waited for: its COMMIT plans their next check anyway.
      db.transaction(async (tx) =>
        (await dueChecksQuery(tx, at, limit)).map((row) => ({ ...row, nextCheckAt: row.nextCheckAt! })),
      ),
    recordPollMiss: async (paymentId, reason) =>
      write([paymentBaseOf(paymentId)], () => recordPollMiss(paymentId, reason, now(), policy)),
    listDrifts: async (paymentId) =>
      paymentId === undefined
        ? db.select().from(drifts).orderBy(asc(drifts.seq))
        : db.select().from(drifts).where(eq(drifts.paymentId, paymentId)).orderBy(asc(drifts.seq)),
    getEvent: async (eventId) => (await db.select().from(events).where(eq(events.eventId, eventId)))[0],
    listPaymentEvents: async (paymentId) =>
      db.select().from(events).where(eq(events.paymentId, paymentId)).orderBy(asc(events.seq)),
    listStateChanges: async (paymentId) =>
      db
        .select()
        .from(stateChanges)
        .where(eq(stateChanges.paymentId, paymentId))
        .orderBy(asc(stateChanges.seq)),
    listRefunds: async (paymentId) =>
      db.select().from(refunds).where(eq(refunds.paymentId, paymentId)).orderBy(asc(refunds.id)),
    purgeRawBodies: async (receivedBefore) =>
      (
        await db
          .update(events)
          .set({ rawBody: null })
          .where(and(lt(events.receivedAt, receivedBefore), isNotNull(events.rawBody)))
      ).rowCount ?? 0,
    ping: async () => {
      await db.execute(sql`select 1`);
    },
    close: async () => {
      await pool.end();
    },
  };
  return withLedgerErrors(ledger);
}

/** The id base whose writers this event must wait for; an event that names no payment, its own id. */
function applyLockKey({ event, reading }: ApplyInput): string {
  if (reading.kind !== 'observation') return `event:${event.eventId}`;
  const observation = reading.observation;
  return observation.kind === 'payment' ? paymentBaseOf(observation.paymentId) : observation.paymentBase;
}

/** The sweep's query (exported for the test that checks its plan uses payments_next_check_idx). */
export function dueChecksQuery(db: PgDb | PgTx, at: number, limit: number) {
  return db
    .select({
      paymentId: payments.id,
      checkAttempts: payments.checkAttempts,
      nextCheckAt: payments.nextCheckAt,
    })
    .from(payments)
    .where(lte(payments.nextCheckAt, at))
    .orderBy(asc(payments.nextCheckAt))
    .limit(limit)
    .for('update', { skipLocked: true });
}

async function migrateOnce(pool: Pool): Promise<void> {
  const client = await pool.connect();
  try {
    await client.query('select pg_advisory_lock($1)', [MIGRATION_LOCK]);
    try {
      await migrate(drizzle(client), { migrationsFolder: pgMigrationsFolder() });
    } finally {
      await client.query('select pg_advisory_unlock($1)', [MIGRATION_LOCK]);
    }
  } finally {
    client.release();
  }
}

function withLedgerErrors(ledger: Ledger): Ledger {
  const wrapped: Record<string, unknown> = {};
  for (const [name, method] of Object.entries(ledger) as [
    string,
    (...args: unknown[]) => Promise<unknown>,
  ][]) {
    wrapped[name] = async (...args: unknown[]) => {
      try {
        return await method(...args);
      } catch (error) {
        throw ledgerError(error);
      }
    };
  }
  return wrapped as unknown as Ledger;
}

async function getPaymentView(db: PgDb, paymentId: string): Promise<PaymentView | undefined> {
  const [payment] = await db.select().from(payments).where(eq(payments.id, paymentId));
  if (!payment) return undefined;
  const [stats] = await db
    .select({ eventCount: count(), lastEventAt: max(events.receivedAt) })
    .from(events)
    .where(eq(events.paymentId, paymentId));
  return { ...payment, eventCount: stats?.eventCount ?? 0, lastEventAt: stats?.lastEventAt ?? null };
}

async function countLedger(db: PgDb): Promise<LedgerCounts> {
  const [eventsByOutcome, paymentsByStage, [reversed], [stale], [driftCount]] = await Promise.all([
    db.select({ outcome: events.outcome, n: count() }).from(events).groupBy(events.outcome),
    db.select({ stage: payments.stage, n: count() }).from(payments).groupBy(payments.stage),
    db.select({ n: count() }).from(payments).where(eq(payments.reversedAfterRelease, true)),
    db.select({ n: count() }).from(payments).where(isNotNull(payments.staleAt)),
    db.select({ n: count() }).from(drifts),
  ]);
  return {
    eventsByOutcome: Object.fromEntries(eventsByOutcome.map((row) => [row.outcome, row.n])),
    paymentsByStage: Object.fromEntries(paymentsByStage.map((row) => [row.stage, row.n])),
    reversedAfterRelease: reversed?.n ?? 0,
    stale: stale?.n ?? 0,
    drifts: driftCount?.n ?? 0,
  };
}

function listEventsQuery(db: PgDb, filter: EventFilter) {
  return db
    .select()
    .from(events)
    .where(eventFilterWhere(events, filter))
    .orderBy(asc(events.seq))
    .limit(filter.limit);
}

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import {
  DEFAULT_CHECK_POLICY,
  openPgLedger,
  openSqliteLedger,
  type ApplyResult,
  type Ledger,
  type StoredEvent,
} from '../../src/ledger';
import { createLogger } from '../../src/log';
import { createPlatformClient } from '../../src/platform';
import { createRedisConnection, startReconciler, type Reconciler } from '../../src/queue';
import { startPlatformSimulator, TEST_AMOUNTS } from '../../src/simulator';
import {
  applyInputOf,
  eachConcurrently,
  lifecycleEnvelopes,
  LIFECYCLES,
  shuffled,
  type Envelope,
} from '../helpers/pg-envelopes';
import { createTestDatabase, dropTestDatabase } from '../helpers/postgres';
import { RedisServer } from '../helpers/redis-server';
import { waitFor } from '../helpers/wait-for';

/*
 * Several openPgLedger instances on one fresh database, each with its own pool: several hosts writing one ledger.
 * PostgreSQL-specific, so these run on PostgreSQL whatever TEST_LEDGER says.
 */

/** Ledger "hosts" writing at once, and applies each keeps in flight. */
const HOSTS = 4;
const PER_HOST = 6;

let url: string;
let dir: string;
let opened: Ledger[];

beforeEach(async () => {
  url = await createTestDatabase();
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paystate-pg-concurrency-'));
  opened = [];
});

afterEach(async () => {
  await Promise.all(opened.map((ledger) => ledger.close().catch(() => {})));
  await dropTestDatabase(url);
  fs.rmSync(dir, { recursive: true, force: true });
});

async function openHost(options: Partial<Parameters<typeof openPgLedger>[0]> = {}): Promise<Ledger> {
  const ledger = await openPgLedger({ url, poolSize: 5, ...options });
  opened.push(ledger);
  return ledger;
}

/** HOSTS ledgers on the test database; opened one after another (each runs the migration under its lock). */
async function openHosts(count = HOSTS): Promise<Ledger[]> {
  const hosts: Ledger[] = [];
  for (let i = 0; i < count; i++) hosts.push(await openHost());
  return hosts;
}

/** A raw connection of the test's own, for what the Ledger interface does not show. */
async function rawClient(): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url });
  client.on('error', () => {});
  await client.connect();
  return client;
}

interface PlannedPayment {
  base: string;
  paymentId: string;
  /** Every event once, in platform order. */
  inOrder: Envelope[];
  /** The same plus re-deliveries (same event id) and a re-send of the last status under a new id. */
  deliveries: Envelope[];
}

/** `count` payments cycling through LIFECYCLES, each with its refunds and duplicates. */
function planPayments(count: number, firstBase: number): PlannedPayment[] {
  return Array.from({ length: count }, (_, index) => {
    const lifecycle = LIFECYCLES[index % LIFECYCLES.length]!;
    const base = String(firstBase + index);
    const { paymentId, statuses, refunds, resent } = lifecycleEnvelopes(base, lifecycle);
    const inOrder = [...statuses, ...refunds];
    const redelivered = [statuses[index % statuses.length]!, ...(refunds.length ? [refunds[0]!] : [])];
    return { base, paymentId, inOrder, deliveries: [...inOrder, ...redelivered, resent] };
  });
}

/** The part of a payment's row that must not depend on the order or the host its events were applied on. */
function standingOf(payment: Awaited<ReturnType<Ledger['getPayment']>>) {
  if (!payment) return undefined;
  const { stage, statusCode, status, changeTime, capturedTotal, refundedTotal, amount, currency } = payment;
  const { merchantReference, releasedAt, reversedAfterRelease, staleAt } = payment;
  return {
    stage,
    statusCode,
    status,
    changeTime,
    capturedTotal,
    refundedTotal,
    amount,
    currency,
    merchantReference,
    released: releasedAt !== null,
    reversedAfterRelease,
    stale: staleAt !== null,
  };
}

/** Which fields differ, as `field: expected ≠ actual`. */
function differences(expected: object | undefined, actual: object | undefined): string[] {
  if (!expected || !actual) return expected === actual ? [] : ['payment missing'];
  const keys = new Set([...Object.keys(expected), ...Object.keys(actual)]);
  return [...keys]
    .filter((key) => JSON.stringify(expected[key as never]) !== JSON.stringify(actual[key as never]))
    .map(
      (key) => `${key}: ${JSON.stringify(expected[key as never])} ≠ ${JSON.stringify(actual[key as never])}`,
    );
}

/** A count and the first few, so that a failure stays readable. */
const summary = (problems: string[]) => ({ count: problems.length, first: problems.slice(0, 6) });

function countOutcomes(events: readonly { outcome: string }[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const { outcome } of events) counts[outcome] = (counts[outcome] ?? 0) + 1;
  return counts;
}

describe('PostgreSQL ledger: several hosts writing one database', () => {
  it('the change feed read from cursor 0 while hosts write gives every committed change exactly once, in seq order', async () => {
    const hosts = await openHosts();
    const reader = await openHost({ poolSize: 1 });
    const plan = planPayments(80, 6_100_000_000);
    // Payments interleaved (each one's deliveries in platform order, so most of them change something), so
    // transactions of many payments are open at once on every host.
    const longest = Math.max(...plan.map((payment) => payment.deliveries.length));
    const work = Array.from({ length: longest }, (_, step) =>
      plan.flatMap((payment) => payment.deliveries[step] ?? []),
    ).flat();

    const seen: number[] = [];
    let cursor = 0;
    let pagesWhileWriting = 0;
    let writing = true;
    const readPage = async () => {
      const page = await reader.listChanges(cursor, 20);
      for (const change of page) seen.push(change.seq);
      if (page.length) cursor = page[page.length - 1]!.seq;
      return page.length;
    };
    const readLoop = (async () => {
      while (writing) {
        await readPage();
        pagesWhileWriting += 1;
      }
    })();

    const startedAt = Date.now();
    const lanes = hosts.map((host, h) =>
      eachConcurrently(
        work.filter((_, i) => i % hosts.length === h),
        PER_HOST,
        async (envelope) => void (await host.apply(applyInputOf(envelope))),
      ),
    );
    await Promise.all(lanes);
    const writeMs = Date.now() - startedAt;
    writing = false;
    await readLoop;
    while ((await readPage()) > 0);

    const client = await rawClient();
    let committed: number[];
    try {
      committed = (
        await client.query<{ seq: number }>('select seq from state_changes order by seq')
      ).rows.map((row) => Number(row.seq));
    } finally {
      await client.end();
    }
    const repeated = seen.filter((seq, i) => i > 0 && seq <= seen[i - 1]!);
    const seenSet = new Set(seen);
    const skipped = committed.filter((seq) => !seenSet.has(seq));
    console.log(
      `pg change feed under ${hosts.length} hosts × ${PER_HOST} applies: ${JSON.stringify({
        applies: work.length,
        changes: committed.length,
        writeMs,
        readerPagesWhileWriting: pagesWhileWriting,
        readWhileWriting: seen.length,
        skipped: skipped.length,
        repeatedOrOutOfOrder: repeated.length,
      })}`,
    );

    expect(committed.length).toBeGreaterThan(plan.length * 3);
    // The reader really read while the hosts wrote: most pages came in the middle of the writes.
    expect(pagesWhileWriting).toBeGreaterThan(20);
    expect(skipped).toEqual([]);
    expect(repeated).toEqual([]);
    expect(seen).toEqual(committed);
  }, 60_000);

  it('one payment’s events applied at once from several hosts in random orders, with duplicates, end as in order on SQLite', async () => {
    const hosts = await openHosts();
    const plan = planPayments(60, 6_200_000_000);

    // Each payment's deliveries all at once, shuffled and spread over the hosts; three payments at a time.
    const startedAt = Date.now();
    const pgResults = new Map<string, ApplyResult[]>();
    await eachConcurrently(plan, 3, async (payment) => {
      const order = shuffled(payment.deliveries, Number(payment.base));
      pgResults.set(
        payment.paymentId,
        await Promise.all(order.map((envelope, i) => hosts[i % hosts.length]!.apply(applyInputOf(envelope)))),
      );
    });
    const pgMs = Date.now() - startedAt;

    // Reference: every delivery in platform order, one at a time, on SQLite.
    const inOrder = openSqliteLedger({ path: path.join(dir, 'in-order.db') });
    opened.push(inOrder);
    for (const payment of plan)
      for (const envelope of payment.deliveries) await inOrder.apply(applyInputOf(envelope));

    // Serial equivalence: the same events on SQLite one at a time in the order PostgreSQL serialised them (its
    // event seq order per payment; re-deliveries of a recorded id change nothing but their count).
    const serial = openSqliteLedger({ path: path.join(dir, 'pg-order.db') });
    opened.push(serial);
    const reader = hosts[0]!;
    const pgEvents = new Map<string, StoredEvent[]>();
    for (const payment of plan) {
      const events = await reader.listPaymentEvents(payment.paymentId);
      pgEvents.set(payment.paymentId, events);
      const byId = new Map(payment.deliveries.map((envelope) => [envelope.id, envelope]));
      for (const event of events) await serial.apply(applyInputOf(byId.get(event.eventId)!));
      for (const envelope of payment.deliveries.slice(payment.inOrder.length))
        if (!envelope.id.includes('#')) await serial.apply(applyInputOf(envelope));
    }

    const standingProblems: string[] = [];
    const eventProblems: string[] = [];
    for (const payment of plan) {
      const [pgPayment, reference, serialPayment] = await Promise.all([
        reader.getPayment(payment.paymentId),
        inOrder.getPayment(payment.paymentId),
        serial.getPayment(payment.paymentId),
      ]);
      const got = standingOf(pgPayment);
      for (const [label, expected] of [
        ['in order on SQLite', standingOf(reference)],
        ['serial on SQLite', standingOf(serialPayment)],
      ] as const) {
        const diff = differences(expected, got);
        if (diff.length) standingProblems.push(`${payment.paymentId} vs ${label}: ${diff.join('; ')}`);
      }

      const events = pgEvents.get(payment.paymentId)!;
      const serialEvents = await serial.listPaymentEvents(payment.paymentId);
      const ids = (list: readonly StoredEvent[]) =>
        list.map((e) => `${e.eventId}:${e.outcome}:${e.deliveries}`);
      if (JSON.stringify(ids(events)) !== JSON.stringify(ids(serialEvents)))
        eventProblems.push(
          `${payment.paymentId}: ${ids(events).join(',')} ≠ serial ${ids(serialEvents).join(',')}`,
        );
      const sent = new Map<string, number>();
      for (const envelope of payment.deliveries) sent.set(envelope.id, (sent.get(envelope.id) ?? 0) + 1);
      for (const event of events)
        if (event.deliveries !== sent.get(event.eventId))
          eventProblems.push(
            `${event.eventId}: deliveries ${event.deliveries}, sent ${sent.get(event.eventId)}`,
          );
      if (events.length !== sent.size)
        eventProblems.push(`${payment.paymentId}: ${events.length} event rows`);
      // Exactly one status change per applied status event: none applied twice by two hosts.
      const changes = await reader.listStateChanges(payment.paymentId);
      const statusChanges = changes.filter((c) => c.kind === 'status' && c.eventSeq !== null);
      const perEvent = new Set(statusChanges.map((c) => c.eventSeq));
      if (perEvent.size !== statusChanges.length)
        eventProblems.push(`${payment.paymentId}: an event changed twice`);
    }

    const allPgEvents = [...pgEvents.values()].flat();
    const pgCounts = await reader.counts();
    const inOrderCounts = await inOrder.counts();
    const serialCounts = await serial.counts();
    const allResults = [...pgResults.values()].flat();
    const deliveries = plan.reduce((n, p) => n + p.deliveries.length, 0);
    console.log(
      `pg same-payment writers: ${JSON.stringify({
        payments: plan.length,
        deliveries,
        hosts: hosts.length,
        pgMs,
        pgEventsByOutcome: pgCounts.eventsByOutcome,
        inOrderEventsByOutcome: inOrderCounts.eventsByOutcome,
        applyAnswers: countOutcomes(allResults),
        paymentsByStage: pgCounts.paymentsByStage,
      })}`,
    );

    expect(summary(standingProblems)).toEqual(summary([]));
    expect(summary(eventProblems)).toEqual(summary([]));
    // Duplicates exactly counted: one row per event id, every delivery after the first counted on its row.
    expect(allPgEvents.length).toBe(
      plan.reduce((n, p) => n + new Set(p.deliveries.map((e) => e.id)).size, 0),
    );
    expect(allPgEvents.reduce((n, e) => n + e.deliveries, 0)).toBe(deliveries);
    expect(pgCounts.eventsByOutcome).toEqual(serialCounts.eventsByOutcome);
    expect(pgCounts.paymentsByStage).toEqual(inOrderCounts.paymentsByStage);
    expect(pgCounts.eventsByOutcome.duplicate).toBe(inOrderCounts.eventsByOutcome.duplicate);
    // What apply answered matches what was stored: a same-id re-delivery answers duplicate and adds no row.
    expect(allResults.filter((r) => r.outcome === 'duplicate').length).toBe(
      (pgCounts.eventsByOutcome.duplicate ?? 0) + deliveries - allPgEvents.length,
    );
  }, 60_000);

  it('a sweep skips the payment row another transaction holds locked and returns the other due payments at once', async () => {
    const [writer, sweeper] = (await openHosts(2)) as [Ledger, Ledger];
    const ids = Array.from({ length: 6 }, (_, i) => `${6_300_000_000 + i}_0`);
    for (const paymentId of ids)
      await writer.registerPayment({
        paymentId,
        merchantReference: `order-${paymentId}`,
        amount: 1500,
        currency: 'EUR',
        fulfilmentDueAt: Date.now() - 60_000,
        fulfilmentDueAtGiven: true,
      });
    const later = Date.now() + 60_000;
    expect((await sweeper.listDueChecks(later, 100)).map((due) => due.paymentId).sort()).toEqual(ids);

    const holder = await rawClient();
    try {
      await holder.query('begin');
      await holder.query('select id from payments where id = $1 for update', [ids[2]]);
      const startedAt = Date.now();
      const due = await Promise.race([
        sweeper.listDueChecks(later, 100),
        new Promise<'waited'>((resolve) => setTimeout(() => resolve('waited'), 2_000).unref()),
      ]);
      const tookMs = Date.now() - startedAt;
      console.log(`pg sweep beside a locked row: answered in ${tookMs} ms`);
      expect(due).not.toBe('waited');
      expect((due as { paymentId: string }[]).map((d) => d.paymentId).sort()).toEqual(
        ids.filter((id) => id !== ids[2]),
      );
      // Two sweeps at once from two hosts: neither waits (for the held row or for the other sweep), neither
      // returns the held row, and together they return every other due payment (a row one of them holds
      // while the other reads is skipped by that other).
      const [a, b] = await Promise.all([writer.listDueChecks(later, 100), sweeper.listDueChecks(later, 100)]);
      const together = new Set([...a, ...b].map((d) => d.paymentId));
      expect([...together].sort()).toEqual(ids.filter((id) => id !== ids[2]));
    } finally {
      await holder.query('rollback').catch(() => {});
      await holder.end();
    }
    expect(await sweeper.listDueChecks(later, 100)).toHaveLength(ids.length);
  });

  it('two schedulers on one PostgreSQL ledger and one Redis poll every due payment exactly once per attempt', async () => {
    const log = createLogger({ level: 'error', json: true });
    log.silent = true;
    const credentials = { merchantId: 'TestMerchant', apiKeyId: 'test-key-id', apiSecret: 'test-api-secret' };
    const simulator = await startPlatformSimulator(credentials);
    const redis = await RedisServer.start();
    const policy = {
      ...DEFAULT_CHECK_POLICY,
      leadMs: 0,
      ladderMs: [300],
      fastLadderMs: [300],
    };
    const captured = Array.from({ length: 24 }, (_, i) => `${6_400_000_000 + i}_0`);
    const uncertain = Array.from({ length: 8 }, (_, i) => `${6_410_000_000 + i}_0`);
    for (const paymentId of captured) simulator.createPayment({ paymentId, amount: 1500 });
    // 1209: the capture stays uncertain (92), so these are polled again and again on the fast ladder.
    for (const paymentId of uncertain)
      simulator.createPayment({ paymentId, amount: TEST_AMOUNTS.uncertainCapture });

    const reconcilers: Reconciler[] = [];
    const connections: ReturnType<typeof createRedisConnection>[] = [];
    const platforms: ReturnType<typeof createPlatformClient>[] = [];
    const work = [
      { sweeps: 0, applies: 0 },
      { sweeps: 0, applies: 0 },
    ];
    try {
      const ledgers: Ledger[] = [];
      for (const counted of work) {
        const ledger = await openHost({ checkPolicy: policy });
        ledgers.push(ledger);
        // Counts the work each scheduler did, to see both took part.
        const watched: Ledger = {
          ...ledger,
          listDueChecks: async (...args) => {
            counted.sweeps += 1;
            return ledger.listDueChecks(...args);
          },
          apply: async (input) => {
            counted.applies += 1;
            return ledger.apply(input);
          },
        };
        const connection = createRedisConnection(redis.url, { role: 'worker' });
        connections.push(connection);
        const platform = createPlatformClient({
          url: simulator.url,
          ...credentials,
          log,
          backoffBaseMs: 20,
          timeoutMs: 2_000,
          maxRps: 500,
        });
        platforms.push(platform);
        reconcilers.push(
          await startReconciler({
            connection,
            ledger: watched,
            platform,
            log,
            everyMs: 100,
            sweepCap: 50,
            maxRps: 500,
          }),
        );
      }
      const ledger = ledgers[0]!;
      for (const paymentId of [...captured, ...uncertain])
        await ledger.registerPayment({
          paymentId,
          merchantReference: `order-${paymentId}`,
          amount: 1500,
          currency: 'EUR',
          fulfilmentDueAt: Date.now(),
          fulfilmentDueAtGiven: true,
        });

      await waitFor(async () => {
        for (const paymentId of captured)
          if ((await ledger.getPayment(paymentId))?.stage !== 'captured') return false;
        for (const paymentId of uncertain)
          if (((await ledger.getPayment(paymentId))?.checkAttempts ?? 0) < 5) return false;
        return true;
      }, 30_000);
      await Promise.all(reconcilers.splice(0).map((reconciler) => reconciler.close()));

      const problems: string[] = [];
      const attemptsPolled: Record<string, number> = {};
      for (const paymentId of [...captured, ...uncertain]) {
        const polls = (await ledger.listPaymentEvents(paymentId)).filter((event) => event.source === 'poll');
        const attempts = polls.map((event) => Number(/^poll-.+?_0-(\d+)-\d+$/.exec(event.eventId)?.[1]));
        const calls = simulator.detailsCalls(paymentId);
        attemptsPolled[paymentId] = attempts.length;
        if (calls !== polls.length)
          problems.push(`${paymentId}: ${calls} GetPaymentDetails, ${polls.length} polls`);
        const expected = attempts.map((_, i) => i + 1);
        if (JSON.stringify(attempts) !== JSON.stringify(expected))
          problems.push(`${paymentId}: attempts ${attempts.join(',')}`);
        if (captured.includes(paymentId) && calls !== 1) problems.push(`${paymentId}: polled ${calls}×`);
      }
      const uncertainPolls = uncertain.map((id) => attemptsPolled[id]!);
      console.log(
        `pg two schedulers: ${JSON.stringify({
          capturedPolls: captured.length,
          uncertainPollsEach: uncertainPolls,
          detailsRequests: simulator.requests.filter((r) => r.path.endsWith('/details')).length,
          perScheduler: work,
        })}`,
      );
      expect(problems).toEqual([]);
      expect(Math.min(...uncertainPolls)).toBeGreaterThanOrEqual(5);
      // Both schedulers took part.
      for (const counted of work) expect(counted.sweeps + counted.applies).toBeGreaterThan(0);
    } finally {
      await Promise.all(reconcilers.map((reconciler) => reconciler.close()));
      for (const connection of connections) connection.disconnect();
      for (const platform of platforms) platform.close();
      await simulator.close();
      await redis.stop();
    }
  }, 60_000);
});

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { drizzle } from 'drizzle-orm/better-sqlite3';
import { drizzle as drizzlePg } from 'drizzle-orm/node-postgres';
import { Redis } from 'ioredis';
import pg from 'pg';
import {
  DEFAULT_CHECK_POLICY,
  openLedger,
  openSqliteLedger,
  readWebhookEvent,
  type CheckPolicy,
  type Ledger,
} from '../../src/ledger';
import { dueChecksQuery as pgDueChecksQuery } from '../../src/ledger/pg-ledger';
import { dueChecksQuery } from '../../src/ledger/sqlite-ledger';
import { createLogger } from '../../src/log';
import { createPlatformClient, type PlatformClient } from '../../src/platform';
import { createRedisConnection, startReconciler, type Reconciler } from '../../src/queue';
import { startPlatformSimulator, type PlatformSimulator } from '../../src/simulator';
import { paymentEvent } from '../helpers/deliveries';
import { describeOn, newLedgerLocation, type TestLedgerLocation } from '../helpers/ledger';
import { waitFor } from '../helpers/wait-for';

const log = createLogger({ level: 'error', json: true });
log.silent = true;

const CREDENTIALS = { merchantId: 'TestMerchant', apiKeyId: 'test-key-id', apiSecret: 'test-api-secret' };

let dir: string;
let ledger: Ledger;
let where: TestLedgerLocation | undefined;
let simulator: PlatformSimulator;
let platform: PlatformClient;
let connection: Redis;
let reconciler: Reconciler | undefined;

async function start(policy: Partial<CheckPolicy> = {}) {
  where = await newLedgerLocation(dir);
  ledger = await openLedger(where.location, { checkPolicy: { ...DEFAULT_CHECK_POLICY, ...policy } });
  reconciler = await startReconciler({
    connection,
    ledger,
    platform,
    log,
    everyMs: 150,
    sweepCap: 50,
    maxRps: 50,
  });
}

const register = (paymentId: string, dueInMs: number) =>
  ledger.registerPayment({
    paymentId,
    merchantReference: `order-${paymentId}`,
    amount: 1500,
    currency: 'EUR',
    fulfilmentDueAt: Date.now() + dueInMs,
    fulfilmentDueAtGiven: true,
  });

/** A webhook's observation applied straight to the ledger (the receiver and queue are tested elsewhere). */
const applyWebhook = (eventId: string, paymentId: string, statusCode: number, changeTime: string) =>
  ledger.apply({
    event: {
      eventId,
      source: 'webhook',
      type: 'payment.status',
      keyId: 'k',
      signature: 's',
      rawBody: '{}',
      rawIndex: null,
      receivedAt: Date.now(),
    },
    reading: readWebhookEvent(paymentEvent({ eventId, paymentId, statusCode, changeTime })),
  });

/** A refund webhook (statusCode 8) applied straight to the ledger. */
const applyRefundWebhook = (eventId: string, refundId: string, amount: number, changeTime: string) =>
  ledger.apply({
    event: {
      eventId,
      source: 'webhook',
      type: 'refund.refunded',
      keyId: 'k',
      signature: 's',
      rawBody: '{}',
      rawIndex: null,
      receivedAt: Date.now(),
    },
    reading: readWebhookEvent({
      type: 'refund.refunded',
      refund: {
        id: refundId,
        status: 'REFUNDED',
        refundOutput: { amountOfMoney: { amount, currencyCode: 'EUR' } },
        statusOutput: { statusCode: 8, statusCategory: 'REFUNDED', statusCodeChangeDateTime: changeTime },
      },
    }),
  });

describe('reconciler', () => {
  beforeEach(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paystate-reconcile-'));
    simulator = await startPlatformSimulator(CREDENTIALS);
    platform = createPlatformClient({
      url: simulator.url,
      ...CREDENTIALS,
      log,
      backoffBaseMs: 20,
      timeoutMs: 2_000,
    });
    connection = createRedisConnection(process.env.TEST_REDIS_URL!, { role: 'worker' });
    await connection.flushdb();
  });

  afterEach(async () => {
    await reconciler?.close();
    reconciler = undefined;
    connection.disconnect();
    platform.close();
    await simulator.close();
    await ledger.close();
    await where?.drop();
    where = undefined;
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('captures a registered payment whose webhook never comes, by a poll before its due time', async () => {
    await start({ leadMs: 2_000 });
    simulator.createPayment({
      paymentId: '5100000001_0',
      amount: 1500,
      merchantReference: 'order-5100000001_0',
    });
    const registered = await register('5100000001_0', 3_000);
    const dueAt = registered.payment.fulfilmentDueAt!;

    await waitFor(async () => (await ledger.getPayment('5100000001_0'))?.stage === 'captured');
    const payment = (await ledger.getPayment('5100000001_0'))!;
    expect(payment.updatedAt).toBeLessThan(dueAt);
    expect(payment).toMatchObject({ lastSource: 'poll', capturedTotal: 1500, nextCheckAt: null });
    expect((await ledger.listDrifts('5100000001_0')).length).toBe(1);
  });

  it('never polls a payment that got its captured webhook', async () => {
    await start({ leadMs: 60_000 });
    // The check falls due 2 s after registration, and the webhook comes first. (A payment already due when its
    // webhook lands may have been swept a moment before: that poll is the race this test is not about.)
    const registered = await register('5100000002_0', 62_000);
    const checkDueAt = registered.payment.nextCheckAt!;
    await ledger.apply({
      event: {
        eventId: 'captured-webhook',
        source: 'webhook',
        type: 'payment.captured',
        keyId: 'k',
        signature: 's',
        rawBody: '{}',
        rawIndex: null,
        receivedAt: Date.now(),
      },
      reading: readWebhookEvent(
        paymentEvent({
          eventId: 'captured-webhook',
          paymentId: '5100000002_0',
          statusCode: 9,
          changeTime: '20261127100000',
        }),
      ),
    });
    expect(Date.now()).toBeLessThan(checkDueAt);
    await waitFor(() => Date.now() > checkDueAt + 100);
    const sweepsBefore = await reconciler!.sweeps.getCompletedCount();
    await waitFor(async () => (await reconciler!.sweeps.getCompletedCount()) >= sweepsBefore + 3);
    expect(simulator.detailsCalls('5100000002_0')).toBe(0);
    expect((await ledger.getPayment('5100000002_0'))?.nextCheckAt).toBeNull();
  });

  it('retries 429 and 500 answers and ends applied', async () => {
    await start({ leadMs: 60_000 });
    simulator.createPayment({ paymentId: '5100000003_0', amount: 1500 });
    simulator.failNext(1, 429);
    simulator.failNext(1, 500);
    await register('5100000003_0', 1_000);
    await waitFor(async () => (await ledger.getPayment('5100000003_0'))?.stage === 'captured');
    const statuses = simulator.requests.filter((r) => r.path.includes('5100000003_0')).map((r) => r.status);
    expect(statuses).toEqual(expect.arrayContaining([429, 500, 200]));
  });

  it('records a refund made only on the platform as drift and updates the ledger', async () => {
    await start({ leadMs: 60_000 });
    simulator.createPayment({ paymentId: '5100000004_0', amount: 1500 });
    simulator.refundPayment('5100000004_0', { amount: 400 });
    await register('5100000004_0', 1_000);
    await waitFor(async () => (await ledger.getPayment('5100000004_0'))?.refundedTotal === 400);
    const drifts = await ledger.listDrifts('5100000004_0');
    expect(drifts.length).toBeGreaterThan(0);
    expect(JSON.parse(drifts.at(-1)!.platformView)).toMatchObject({ refundedTotal: 400 });
    expect(JSON.parse(drifts[0]!.ledgerView)).toMatchObject({ stage: 'expected' });
  });

  it("keeps a refund event's check through the payment's own refunded webhook, and polls the refunds it missed", async () => {
    await start({ leadMs: 60_000, refundRecheckMs: 1_000 });
    const paymentId = '5100000007_0';
    simulator.createPayment({ paymentId, amount: 1500 });
    const refundId = simulator.refundPayment(paymentId, { amount: 400 }).Operations.at(-1)!.id;
    simulator.refundPayment(paymentId, { amount: 1100 });
    await applyWebhook('captured', paymentId, 9, '20261127100000');
    expect((await ledger.getPayment(paymentId))?.nextCheckAt).toBeNull();

    // Only the first refund's webhook arrives, then the payment's own conclusive `refunded`.
    await applyRefundWebhook('refund-1', refundId, 400, '20261127100100');
    await applyWebhook('refunded', paymentId, 8, '20261127100200');
    const refunded = (await ledger.getPayment(paymentId))!;
    expect(refunded).toMatchObject({ stage: 'refunded', refundedTotal: 400 });
    expect(refunded.nextCheckAt).not.toBeNull();

    await waitFor(async () => (await ledger.getPayment(paymentId))?.refundedTotal === 1500);
    expect(await ledger.getPayment(paymentId)).toMatchObject({ lastSource: 'poll', nextCheckAt: null });
    expect(simulator.detailsCalls(paymentId)).toBe(1);
  });

  it('polls again for a second refund within the hour (its poll job is not taken for the first one)', async () => {
    await start({ leadMs: 60_000, refundRecheckMs: 300 });
    const paymentId = '5100000008_0';
    simulator.createPayment({ paymentId, amount: 1500 });
    await applyWebhook('captured', paymentId, 9, '20261127100000');

    const first = simulator.refundPayment(paymentId, { amount: 400 }).Operations.at(-1)!.id;
    await applyRefundWebhook('refund-1', first, 400, '20261127100100');
    await waitFor(() => simulator.detailsCalls(paymentId) === 1);
    await waitFor(async () => (await ledger.getPayment(paymentId))?.nextCheckAt === null);

    const second = simulator.refundPayment(paymentId, { amount: 300 }).Operations.at(-1)!.id;
    await applyRefundWebhook('refund-2', second, 300, '20261127100200');
    await waitFor(() => simulator.detailsCalls(paymentId) === 2);
    await waitFor(async () => (await ledger.getPayment(paymentId))?.nextCheckAt === null);
    expect(await ledger.getPayment(paymentId)).toMatchObject({ refundedTotal: 700, checkAttempts: 0 });
  });

  it('records a 404 and keeps climbing the ladder instead of retrying forever', async () => {
    await start({ leadMs: 60_000, ladderMs: [60_000] });
    await register('5100000005_0', 1_000);
    await waitFor(async () => (await ledger.getPayment('5100000005_0'))?.checkAttempts === 1);
    const payment = (await ledger.getPayment('5100000005_0'))!;
    expect(payment.nextCheckAt).toBeGreaterThan(Date.now() + 30_000);
    expect(simulator.detailsCalls('5100000005_0')).toBe(1);
    const events = await ledger.listPaymentEvents('5100000005_0');
    expect(events.at(-1)).toMatchObject({ source: 'poll', outcome: 'ignored' });
  });

  it('gives a payment up as stale after RECONCILE_GIVE_UP', async () => {
    await start({ leadMs: 60_000, giveUpMs: 500, ladderMs: [100] });
    simulator.setPayment('5100000006_0', {
      id: '5100000006_0',
      status: 'PENDING_CAPTURE',
      statusOutput: { statusCode: 5, statusCategory: 'PENDING_MERCHANT' },
    });
    await register('5100000006_0', 0);
    await waitFor(async () => (await ledger.getPayment('5100000006_0'))?.staleAt != null);
    expect((await ledger.counts()).stale).toBe(1);
    expect((await ledger.getPayment('5100000006_0'))?.nextCheckAt).toBeNull();

    // A late webhook: still inconclusive, the payment stays given up; conclusive, nobody needs to look any more.
    await applyWebhook('late-91', '5100000006_0', 91, '20261127100100');
    expect(await ledger.getPayment('5100000006_0')).toMatchObject({
      stage: 'capture_pending',
      nextCheckAt: null,
    });
    expect((await ledger.counts()).stale).toBe(1);
    await applyWebhook('late-9', '5100000006_0', 9, '20261127100200');
    expect(await ledger.getPayment('5100000006_0')).toMatchObject({
      stage: 'captured',
      staleAt: null,
      nextCheckAt: null,
    });
    expect((await ledger.counts()).stale).toBe(0);
  });
});

describeOn('sqlite')('the sweep query on SQLite', () => {
  it('reads due payments through the next-check index, never a full scan', async () => {
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'paystate-plan-')), 'ledger.db');
    await openSqliteLedger({ path: file }).close();
    const sqlite = new Database(file);
    try {
      const query = dueChecksQuery(drizzle(sqlite), Date.now(), 100).toSQL();
      const plan = sqlite.prepare(`EXPLAIN QUERY PLAN ${query.sql}`).all(...query.params) as {
        detail: string;
      }[];
      const details = plan.map((row) => row.detail).join('\n');
      expect(details).toMatch(/USING INDEX payments_next_check_idx/);
      expect(details).not.toMatch(/^SCAN payments$/m);
    } finally {
      sqlite.close();
      fs.rmSync(path.dirname(file), { recursive: true, force: true });
    }
  });
});

describeOn('postgres')('the sweep query on PostgreSQL', () => {
  it('can read due payments through the next-check index (sequential scans priced out on the empty table)', async () => {
    const { location, drop } = await newLedgerLocation(os.tmpdir(), 'postgres');
    await (await openLedger(location)).close();
    const client = new pg.Client({ connectionString: (location as { url: string }).url });
    client.on('error', () => {});
    await client.connect();
    try {
      // An empty table is read fastest by a sequential scan; priced out, the planner shows what else it has.
      await client.query('SET enable_seqscan = off');
      const query = pgDueChecksQuery(drizzlePg(client), Date.now(), 100).toSQL();
      const plan = await client.query<{ 'QUERY PLAN': string }>(`EXPLAIN ${query.sql}`, query.params);
      const details = plan.rows.map((row) => row['QUERY PLAN']).join('\n');
      expect(details).toMatch(/Index Scan (using|on) payments_next_check_idx/);
      expect(details).not.toMatch(/Seq Scan/);
    } finally {
      await client.end();
      await drop();
    }
  });
});

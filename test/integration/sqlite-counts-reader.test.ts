import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { openSqliteLedger, readWebhookEvent, type Ledger } from '../../src/ledger';
import { startCountsReader } from '../../src/ledger/sqlite-counts-reader';
import { paymentEvent } from '../helpers/deliveries';

let dir: string;
let opened: Ledger[];

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paystate-counts-'));
  opened = [];
});

afterEach(async () => {
  for (const ledger of opened) await ledger.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

function open(countsOffThread: boolean): Ledger {
  const ledger = openSqliteLedger({ path: path.join(dir, 'ledger.db'), countsOffThread });
  opened.push(ledger);
  return ledger;
}

async function apply(
  ledger: Ledger,
  eventId: string,
  paymentId: string,
  statusCode: number,
  changeTime: string,
) {
  const body = paymentEvent({ eventId, paymentId, statusCode, changeTime });
  return ledger.apply({
    event: {
      eventId,
      source: 'webhook',
      type: body.type,
      keyId: 'k',
      signature: 's',
      rawBody: JSON.stringify(body),
      rawIndex: null,
      receivedAt: Date.now(),
    },
    reading: readWebhookEvent(body),
  });
}

/** Whether `promise` settles within microtasks alone, i.e. before any I/O or thread message could arrive. */
async function settlesWithoutLeavingTheThread(promise: Promise<unknown>): Promise<boolean> {
  let settled = false;
  void promise.then(
    () => (settled = true),
    () => (settled = true),
  );
  for (let i = 0; i < 20; i++) await Promise.resolve();
  const early = settled;
  await promise.catch(() => undefined);
  return early;
}

it('counts on its own thread what the counts on the calling thread find', async () => {
  const writer = open(false);
  await apply(writer, 'a-5', '6100000001_0', 5, '20261127100000');
  await apply(writer, 'a-9', '6100000001_0', 9, '20261127100100');
  await apply(writer, 'a-9', '6100000001_0', 9, '20261127100100'); // re-delivered: duplicate
  await apply(writer, 'a-old', '6100000001_0', 5, '20261127095900'); // older: superseded
  await apply(writer, 'b-2', '6100000002_0', 2, '20261127100000');
  await apply(writer, 'c-5', '6100000003_0', 5, '20261127100000');
  // The flags no test here reaches through events: a released-then-refunded payment, a stale one, a drift.
  const sqlite = new Database(path.join(dir, 'ledger.db'));
  sqlite.prepare("UPDATE payments SET reversed_after_release = 1 WHERE id = '6100000001_0'").run();
  sqlite.prepare("UPDATE payments SET stale_at = 1 WHERE id = '6100000003_0'").run();
  sqlite
    .prepare(
      "INSERT INTO drifts (payment_id, ledger_view, platform_view, summary, at) VALUES ('6100000003_0', '{}', '{}', 's', 1)",
    )
    .run();
  sqlite.close();
  const offThread = open(true);

  const counted = await offThread.counts();

  expect(counted).toEqual(await writer.counts());
  expect(counted).toEqual({
    eventsByOutcome: { applied: 4, superseded: 1 },
    paymentsByStage: { authorised: 1, captured: 1, rejected: 1 },
    reversedAfterRelease: 1,
    stale: 1,
    drifts: 1,
  });
  // The duplicate re-delivery is counted on its row (deliveries), not as a row of its own.
  expect((await offThread.getEvent('a-9'))?.deliveries).toBe(2);
});

it('leaves the calling thread free while it counts: the answer comes as a message, never synchronously', async () => {
  const onThread = open(false);
  await apply(onThread, 'c-5', '6100000003_0', 5, '20261127100000');
  const offThread = open(true);

  expect(await settlesWithoutLeavingTheThread(onThread.counts())).toBe(true);
  expect(await settlesWithoutLeavingTheThread(offThread.counts())).toBe(false);
});

it('sees commits made after it started, from its own connection', async () => {
  const offThread = open(true);
  expect((await offThread.counts()).eventsByOutcome).toEqual({});
  await apply(offThread, 'd-5', '6100000004_0', 5, '20261127100000');
  expect((await offThread.counts()).eventsByOutcome).toEqual({ applied: 1 });
});

it('refuses to count once its ledger is closed', async () => {
  const reader = startCountsReader(path.join(dir, 'none.db'), { n: { sql: 'select 1', params: [] } });
  await reader.stop();
  await expect(reader.read()).rejects.toThrow('the ledger is closed');
});

it('rejects with the reason when its connection cannot be opened, and keeps rejecting', async () => {
  const reader = startCountsReader(path.join(dir, 'missing.db'), { n: { sql: 'select 1', params: [] } });
  await expect(reader.read()).rejects.toThrow(
    /counting the ledger failed: .*(unable to open|does not exist)/,
  );
  await expect(reader.read()).rejects.toThrow(/counting the ledger failed/);
  await reader.stop();
});

it('counts once a ledger it could not open becomes readable (a new thread per attempt)', async () => {
  const file = path.join(dir, 'later.db');
  const reader = startCountsReader(file, { n: { sql: 'select count(*) from payments', params: [] } });
  await expect(reader.read()).rejects.toThrow(/counting the ledger failed/);
  await openSqliteLedger({ path: file }).close();

  await expect(reader.read()).resolves.toEqual({ n: [[0]] });
  await reader.stop();
});

import { execFile } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import {
  openPgLedger,
  openSqliteLedger,
  readPaymentDetails,
  readWebhookEvent,
  type EventRecord,
  type Ledger,
  type LedgerLocation,
} from '../../src/ledger';
import {
  copyLedger,
  LEDGER_TABLES,
  LedgerCopyError,
  type LedgerCopyReport,
} from '../../src/ledger/ledger-copy';
import { createTestDatabase, dropTestDatabase } from '../helpers/postgres';

/**
 * `paystate ledger copy`: a SQLite ledger with real content (webhooks, a duplicate, an invalid and an ignored event,
 * a failed one, registration, release, a refund after release, polls with drifts, a replay with its operator action)
 * copied to a fresh PostgreSQL database must read back the same through the Ledger API, keep every id and
 * sequence number, and hand out new ones after the copied ones.
 */

const ROOT = path.join(__dirname, '../..');
const MAIN = path.join(ROOT, 'src/cli/main.ts');
const FIXTURES = path.join(__dirname, '../fixtures');

const fixture = <T = Record<string, unknown>>(file: string): T =>
  JSON.parse(fs.readFileSync(path.join(FIXTURES, file), 'utf8')) as T;

interface Envelope {
  id: string;
  type: string;
  payment?: {
    id: string;
    status?: string;
    statusOutput: Record<string, unknown>;
    paymentOutput: Record<string, unknown>;
  };
  refund?: { id: string; status?: string; statusOutput: Record<string, unknown>; refundOutput: never };
  [field: string]: unknown;
}

const A = '3254564310_0'; // registered, authorised, captured, released, then refunded
const B = '3254564320_0'; // authorised by webhook, captured found by a poll (a drift)
const C = '3254564315_0'; // first seen by a poll: refused
const PAYMENTS = [A, B, C];

let clock = Date.UTC(2026, 10, 27, 10, 0, 0);
const tick = () => (clock += 1_000);

function paymentEvent(eventId: string, paymentId: string, code: 5 | 9, changeTime: string): Envelope {
  const envelope = fixture<Envelope>('plugin-magento-core_stub_webhook_payment.pending_capture.json');
  envelope.id = eventId;
  envelope.payment!.id = paymentId;
  if (code === 9) {
    envelope.type = 'payment.captured';
    envelope.payment!.status = 'CAPTURED';
    Object.assign(envelope.payment!.statusOutput, { statusCode: 9, statusCategory: 'COMPLETED' });
  }
  envelope.payment!.statusOutput.statusCodeChangeDateTime = changeTime;
  return envelope;
}

function record(envelope: Envelope): EventRecord {
  return {
    eventId: envelope.id,
    source: 'webhook',
    type: envelope.type,
    keyId: 'key-1',
    signature: 'c2lnbmF0dXJl',
    rawBody: JSON.stringify(envelope),
    rawIndex: null,
    receivedAt: tick(),
  };
}

async function deliver(ledger: Ledger, envelope: Envelope): Promise<void> {
  await ledger.apply({ event: record(envelope), reading: readWebhookEvent(envelope as never) });
}

async function poll(ledger: Ledger, eventId: string, details: Record<string, unknown>): Promise<void> {
  const event: EventRecord = {
    eventId,
    source: 'poll',
    type: null,
    keyId: null,
    signature: null,
    rawBody: JSON.stringify(details),
    rawIndex: null,
    receivedAt: tick(),
  };
  await ledger.apply({ event, reading: readPaymentDetails(details) });
}

/** A SQLite ledger with one of everything the ledger records. */
async function buildSourceLedger(file: string): Promise<void> {
  const ledger = openSqliteLedger({ path: file, now: tick });
  try {
    await ledger.registerPayment({
      paymentId: A,
      merchantReference: 'test01',
      amount: 1500,
      currency: 'EUR',
      fulfilmentDueAt: clock + 900_000,
      fulfilmentDueAtGiven: true,
    });
    await deliver(ledger, paymentEvent('a-auth', A, 5, '20261127100000'));
    const capture = paymentEvent('a-capture', A, 9, '20261127100100');
    await deliver(ledger, capture);
    await deliver(ledger, capture); // the same delivery again: deliveries 2
    await deliver(ledger, paymentEvent('a-capture-resent', A, 9, '20261127100100')); // duplicate
    expect((await ledger.releasePayment(A, 'captured')).outcome).toBe('released');
    const refund = fixture<Envelope>('plugin-magento-core_stub_webhook_refund.refund_requested.json');
    refund.id = 'a-refund';
    refund.type = 'refund.refunded';
    refund.refund!.id = '3254564310_1';
    refund.refund!.status = 'REFUNDED';
    Object.assign(refund.refund!.statusOutput, {
      statusCode: 8,
      statusCategory: 'REFUNDED',
      statusCodeChangeDateTime: '20261127100500',
    });
    await deliver(ledger, refund);

    await deliver(ledger, paymentEvent('b-auth', B, 5, '20261127100000'));
    const captured = fixture('plugin-magento-core_stub_getpaymentdetails_captured.json');
    captured.id = B;
    (captured.Operations as { id: string }[])[0]!.id = B;
    await poll(ledger, 'b-poll-1', captured);
    await poll(ledger, 'c-poll-1', fixture('plugin-magento-core_stub_getpaymentdetails_rejected.json'));

    const invalid = paymentEvent('a-invalid', A, 9, '20261127100200');
    invalid.payment!.statusOutput.statusCode = '9';
    await deliver(ledger, invalid);
    await deliver(ledger, {
      ...paymentEvent('portal-test', '9999_9', 9, '20261127100000'),
      type: 'payment.test',
    });
    await ledger.recordFailedEvent(record(paymentEvent('b-failed', B, 9, '20261127100300')), 'SQLITE_BUSY');

    const action = await ledger.recordAction({
      actor: 'alice',
      reason: 'lost capture',
      action: 'replay',
      target: `payment ${A}`,
      count: 1,
      dryRun: false,
      details: { eventIds: ['a-capture'] },
    });
    expect(await ledger.replayEvent('a-capture', { actionId: action.id, dryRun: false })).toMatchObject({
      outcome: 'duplicate',
    });
  } finally {
    await ledger.close();
  }
}

/** Rows per table, read with the drivers directly (not through the code under test). */
async function rawCounts(location: LedgerLocation): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  if (location.kind === 'sqlite') {
    const sqlite = new Database(location.path, { readonly: true });
    for (const table of LEDGER_TABLES)
      counts[table] = (sqlite.prepare(`select count(*) as n from "${table}"`).get() as { n: number }).n;
    sqlite.close();
    return counts;
  }
  const client = new pg.Client({ connectionString: location.url });
  await client.connect();
  for (const table of LEDGER_TABLES)
    counts[table] = Number((await client.query(`select count(*) as n from "${table}"`)).rows[0].n);
  await client.end();
  return counts;
}

/** Relations of any kind outside PostgreSQL's own schemas (tables, sequences, the migrations journal). */
async function relationsIn(url: string): Promise<number> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  const { rows } = await client.query(
    `select count(*) as n from pg_class c join pg_namespace n on n.oid = c.relnamespace
      where n.nspname not in ('pg_catalog', 'information_schema') and n.nspname not like 'pg_toast%'`,
  );
  await client.end();
  return Number(rows[0].n);
}

const sha256 = (file: string) => crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');

/** Everything the Ledger API reads back, for comparing two ledgers. */
async function readBack(ledger: Ledger) {
  const perPayment = [];
  for (const id of PAYMENTS)
    perPayment.push({
      payment: await ledger.getPayment(id),
      events: await ledger.listPaymentEvents(id),
      changes: await ledger.listStateChanges(id),
      refunds: await ledger.listRefunds(id),
      byReference: await ledger.listPaymentsByMerchantReference(
        `${(await ledger.getPayment(id))?.merchantReference}`,
      ),
    });
  return {
    perPayment,
    feed: await ledger.listChanges(0, 10_000),
    events: await ledger.listEvents({ limit: 10_000 }),
    drifts: await ledger.listDrifts(),
    actions: await ledger.listActions(1_000),
    counts: await ledger.counts(),
  };
}

interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

function paystate(args: string[], env: Record<string, string>): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', MAIN, ...args],
      {
        cwd: ROOT,
        timeout: 60_000,
        env: { PATH: process.env.PATH ?? '', HOME: os.tmpdir(), USER: 'on-call', NODE_ENV: 'test', ...env },
      },
      (error, stdout, stderr) =>
        resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr }),
    );
  });
}

let dir: string;
let sourcePath: string;
let source: LedgerLocation;
let sourceView: Awaited<ReturnType<typeof readBack>>;
const databases: string[] = [];

async function newDatabase(): Promise<LedgerLocation & { kind: 'postgres' }> {
  const url = await createTestDatabase();
  databases.push(url);
  return { kind: 'postgres', url, poolSize: 2 };
}

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paystate-copy-'));
  sourcePath = path.join(dir, 'source.db');
  source = { kind: 'sqlite', path: sourcePath };
  await buildSourceLedger(sourcePath);
  const ledger = openSqliteLedger({ path: sourcePath });
  sourceView = await readBack(ledger);
  await ledger.close();
});

afterAll(async () => {
  for (const url of databases) await dropTestDatabase(url);
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('ledger copy, SQLite → PostgreSQL', () => {
  it('the fixture ledger holds rows in every table', async () => {
    const counts = await rawCounts(source);
    for (const table of LEDGER_TABLES) expect(counts[table]).toBeGreaterThan(0);
    expect(sourceView.feed.map((change) => change.kind)).toEqual(
      expect.arrayContaining(['registered', 'status', 'released', 'refund', 'reversed_after_release']),
    );
    expect(sourceView.events.map((event) => event.outcome)).toEqual(
      expect.arrayContaining(['applied', 'duplicate', 'invalid', 'ignored', 'failed']),
    );
  });

  it('copies every row with its ids; the dry run writes nothing; a second copy is refused', async () => {
    const target = await newDatabase();
    const sourceHash = sha256(sourcePath);

    const dryRun = await copyLedger({ from: source, to: target, dryRun: true });
    expect(dryRun).toMatchObject({
      dryRun: true,
      copied: false,
      matched: null,
      refusal: null,
      targetRowsBefore: 0,
    });
    const counts = await rawCounts(source);
    expect(Object.fromEntries(dryRun.tables.map((table) => [table.table, table.sourceRows]))).toEqual(counts);
    expect(await relationsIn(target.url)).toBe(0); // not even the migrations ran
    expect(sha256(sourcePath)).toBe(sourceHash);

    // Batches of 2 rows: every table takes several.
    const progress: string[] = [];
    const report = await copyLedger({
      from: source,
      to: target,
      batchSize: 2,
      onProgress: (table, rows) => progress.push(`${table}:${rows}`),
    });
    expect(report).toMatchObject({ dryRun: false, copied: true, matched: true, targetRowsBefore: 0 });
    expect(progress).toContain('events:4');
    for (const table of report.tables) {
      expect(table.targetRows).toBe(counts[table.table]);
      expect(table.match).toBe(true);
      if (table.table === 'events' || table.table === 'state_changes')
        expect(table.targetMaxSeq).toBe(table.sourceMaxSeq);
    }
    expect(await rawCounts(target)).toEqual(counts);
    expect(sha256(sourcePath)).toBe(sourceHash);

    const copy = await openPgLedger(target);
    try {
      expect(await readBack(copy)).toEqual(sourceView);

      // A second copy into the now non-empty target is refused, and changes nothing.
      await expect(copyLedger({ from: source, to: target })).rejects.toThrow(LedgerCopyError);
      await expect(copyLedger({ from: source, to: target })).rejects.toThrow(/already holds \d+ row/);
      const refusedDryRun = await copyLedger({ from: source, to: target, dryRun: true });
      expect(refusedDryRun.refusal).toMatch(/already holds/);
      expect(await rawCounts(target)).toEqual(counts);

      // New writes on the copy continue the sequences after the copied numbers.
      const maxEvent = Math.max(...sourceView.events.map((event) => event.seq));
      const maxChange = Math.max(...sourceView.feed.map((change) => change.seq));
      const maxAction = Math.max(...sourceView.actions.map((action) => action.id));
      await copy.apply({
        event: record(paymentEvent('d-capture', '3254564330_0', 9, '20261127110000')),
        reading: readWebhookEvent(paymentEvent('d-capture', '3254564330_0', 9, '20261127110000') as never),
      });
      const [newEvent] = await copy.listEvents({ afterSeq: maxEvent, limit: 10 });
      expect(newEvent).toMatchObject({ eventId: 'd-capture', seq: maxEvent + 1 });
      const newChanges = await copy.listChanges(maxChange, 10);
      expect(newChanges.map((change) => change.seq)).toEqual([maxChange + 1]);
      const action = await copy.recordAction({
        actor: 'bob',
        reason: null,
        action: 'test',
        target: null,
        count: 0,
        dryRun: false,
      });
      expect(action.id).toBe(maxAction + 1);
      const drifted = fixture('plugin-magento-core_stub_getpaymentdetails_captured.json');
      drifted.id = '3254564340_0';
      (drifted.Operations as { id: string }[])[0]!.id = '3254564340_0';
      await copy.apply({
        event: record(paymentEvent('e-auth', '3254564340_0', 5, '20261127110000')),
        reading: readWebhookEvent(paymentEvent('e-auth', '3254564340_0', 5, '20261127110000') as never),
      });
      await poll(copy, 'e-poll', drifted);
      const drifts = await copy.listDrifts('3254564340_0');
      expect(drifts.map((drift) => drift.seq)).toEqual([
        Math.max(...sourceView.drifts.map((drift) => drift.seq)) + 1,
      ]);
    } finally {
      await copy.close();
    }

    // --overwrite replaces what the target holds, in the same transaction, and the sequences restart from the copy.
    const replaced = await copyLedger({ from: source, to: target, overwrite: true });
    expect(replaced).toMatchObject({ matched: true, targetRowsBefore: expect.any(Number) });
    expect(replaced.targetRowsBefore).toBeGreaterThan(replaced.sourceRows);
    const again = await openPgLedger(target);
    try {
      expect(await readBack(again)).toEqual(sourceView);
      const action = await again.recordAction({
        actor: 'bob',
        reason: null,
        action: 'test',
        target: null,
        count: 0,
        dryRun: false,
      });
      expect(action.id).toBe(Math.max(...sourceView.actions.map((a) => a.id)) + 1);
    } finally {
      await again.close();
    }
  });

  it('refuses a missing source, a source that is not a ledger, and a copy within one backend', async () => {
    const target = await newDatabase();
    const missing = path.join(dir, 'missing.db');
    await expect(copyLedger({ from: { kind: 'sqlite', path: missing }, to: target })).rejects.toThrow(
      /no SQLite ledger at .*missing\.db/,
    );
    expect(fs.existsSync(missing)).toBe(false);
    const notLedger = path.join(dir, 'not-a-ledger.db');
    new Database(notLedger).exec('create table t (x)');
    await expect(copyLedger({ from: { kind: 'sqlite', path: notLedger }, to: target })).rejects.toThrow(
      /no table operator_actions: is it a paystate ledger/,
    );
    await expect(
      copyLedger({ from: source, to: { kind: 'sqlite', path: path.join(dir, 'other.db') } }),
    ).rejects.toThrow(/from one backend to the other/);
    expect(await relationsIn(target.url)).toBe(0);
  });
});

describe('ledger copy, PostgreSQL → SQLite', () => {
  it('copies back into a new SQLite file, which continues its sequences after the copied ones', async () => {
    const middle = await newDatabase();
    expect((await copyLedger({ from: source, to: middle })).matched).toBe(true);
    const back: LedgerLocation = { kind: 'sqlite', path: path.join(dir, 'back', 'ledger.db') };

    const dryRun = await copyLedger({ from: middle, to: back, dryRun: true });
    expect(dryRun.refusal).toBeNull();
    expect(fs.existsSync(back.path)).toBe(false);

    const report = await copyLedger({ from: middle, to: back, batchSize: 3 });
    expect(report.matched).toBe(true);
    expect(await rawCounts(back)).toEqual(await rawCounts(source));
    const ledger = openSqliteLedger({ path: back.path });
    try {
      expect(await readBack(ledger)).toEqual(sourceView);
      const maxEvent = Math.max(...sourceView.events.map((event) => event.seq));
      await ledger.apply({
        event: record(paymentEvent('f-capture', '3254564350_0', 9, '20261127110000')),
        reading: readWebhookEvent(paymentEvent('f-capture', '3254564350_0', 9, '20261127110000') as never),
      });
      expect((await ledger.getEvent('f-capture'))?.seq).toBe(maxEvent + 1);
    } finally {
      await ledger.close();
    }
    await expect(copyLedger({ from: middle, to: back })).rejects.toThrow(/already holds/);
  });
});

describe('paystate ledger copy (the CLI as a process)', () => {
  it('dry run, copy with an operator action recorded in the target, refusal of a second copy', async () => {
    const target = await newDatabase();
    const env = { LEDGER_PATH: sourcePath, LEDGER_URL: target.url };
    const args = ['ledger', 'copy', '--from', 'sqlite', '--to', 'postgres'];

    const dryRun = await paystate([...args, '--dry-run'], env);
    expect({ code: dryRun.code, stderr: dryRun.stderr }).toEqual({ code: 0, stderr: '' });
    expect(dryRun.stdout).toMatch(/^table\s+rows to copy\s+max seq\s+target rows now$/m);
    expect(dryRun.stdout).toMatch(
      /dry run: \d+ row\(s\) would be copied .*; the target is empty; nothing written/,
    );
    expect(await relationsIn(target.url)).toBe(0);

    const noReason = await paystate(args, env);
    expect(noReason.code).toBe(2);
    expect(noReason.stderr).toMatch(/needs --reason/);

    const copied = await paystate(
      [...args, '--reason', 'move to PostgreSQL', '--actor', 'carol', '--json'],
      env,
    );
    expect({ code: copied.code, stderr: copied.stderr }).toEqual({ code: 0, stderr: '' });
    const report = JSON.parse(copied.stdout) as LedgerCopyReport & { actionId: number };
    expect(report).toMatchObject({ copied: true, matched: true, from: `sqlite ${sourcePath}` });
    expect(report.to).toMatch(/^postgres 127\.0\.0\.1:\d+\/paystate_test_/);
    expect(report.tables.map((table) => [table.table, table.targetRows])).toEqual(
      Object.entries(await rawCounts(source)),
    );

    const ledger = await openPgLedger(target);
    try {
      const [action, ...copiedActions] = await ledger.listActions(1_000);
      expect(action).toMatchObject({
        id: report.actionId,
        actor: 'carol',
        reason: 'move to PostgreSQL',
        action: 'ledger.copy',
        count: report.sourceRows,
      });
      expect(copiedActions).toEqual(sourceView.actions);
      const { actions: _a, ...rest } = sourceView;
      const { actions: _b, ...copiedRest } = await readBack(ledger);
      expect(copiedRest).toEqual(rest);
    } finally {
      await ledger.close();
    }

    const again = await paystate([...args, '--reason', 'again'], env);
    expect(again.code).toBe(1);
    expect(again.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(again.stderr).toMatch(/already holds \d+ row\(s\).*--overwrite/);

    const missing = await paystate([...args, '--dry-run', '--from-path', path.join(dir, 'nope.db')], env);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^paystate: no SQLite ledger at .*nope\.db\n$/);
  }, 120_000);
});

import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import { openLedger, type Ledger } from '../../src/ledger';
import { createLogger } from '../../src/log';
import { parseKeyRing } from '../../src/platform';
import { createRedisConnection, createStatusWorker } from '../../src/queue';
import { startPlatformSimulator, type PlatformSimulator } from '../../src/simulator';
import { buildWeb, KEY_RING_SPEC, type BuiltWeb } from '../helpers/build-web';
import { deliver, paymentEvent } from '../helpers/deliveries';
import {
  describeOn,
  lockLedgerWrites,
  newLedgerLocation,
  openImpatientLedger,
  runLedgerSql,
  type TestLedgerLocation,
} from '../helpers/ledger';
import { freePort } from '../helpers/redis-server';
import { waitFor } from '../helpers/wait-for';

const ROOT = path.join(__dirname, '../..');
const MAIN = path.join(ROOT, 'src/cli/main.ts');
const PLATFORM = { merchantId: 'TestMerchant', apiKeyId: 'test-key-id', apiSecret: 'test-api-secret' };

const log = createLogger({ level: 'error', json: true });
log.silent = true;

interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
}

let web: BuiltWeb | undefined;
let dir: string;
/** The ledger the CLI opens (LEDGER_PATH or LEDGER_URL): a fresh one per test, on the backend under test. */
let where: TestLedgerLocation;
const cleanups: (() => Promise<void> | void)[] = [];

function cliEnv(env: Record<string, string>): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH ?? '',
    HOME: process.env.HOME ?? os.tmpdir(),
    USER: 'on-call',
    NODE_ENV: 'test',
    REDIS_URL: process.env.TEST_REDIS_URL!,
    ...where.env,
    WEBHOOK_KEYS: KEY_RING_SPEC,
    ...env,
  };
}

/** Runs the CLI as operators do: a child process with its own environment, nothing mocked. */
function paystate(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  const started = Date.now();
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', MAIN, ...args],
      { cwd: ROOT, timeout: 30_000, env: cliEnv(env) },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
        resolve({ code, stdout, stderr, ms: Date.now() - started });
      },
    );
  });
}

/** The answer of a command that must succeed with --json. */
async function json<T>(args: string[], env?: Record<string, string>): Promise<T> {
  const result = await paystate([...args, '--json'], env);
  expect({ code: result.code, stderr: result.stderr }).toEqual({ code: 0, stderr: '' });
  return JSON.parse(result.stdout) as T;
}

function expectOneLineError(result: CliResult, code: number, pattern: RegExp): void {
  expect(result.code).toBe(code);
  expect(result.stderr.trimEnd().split('\n')).toHaveLength(1);
  expect(result.stderr).toMatch(pattern);
  expect(result.stderr).not.toMatch(/\n\s+at /);
}

function startWorker(ledger: Ledger): Worker {
  const connection: Redis = createRedisConnection(process.env.TEST_REDIS_URL!, { role: 'worker' });
  const worker = createStatusWorker({ connection, ledger, log, concurrency: 2 });
  cleanups.push(async () => {
    await worker.close();
    connection.disconnect();
  });
  return worker;
}

/** A web process whose ledger is the one the CLI opens, and one attempt per job so failures show at once. */
async function startWeb(): Promise<BuiltWeb> {
  web = await buildWeb({ jobOptions: { attempts: 1, removeOnFail: false }, location: where });
  return web;
}

/** A ledger of its own for the worker, which gives up quickly on a held write lock so that its job fails. */
async function workerLedger(): Promise<Ledger> {
  const ledger = await openImpatientLedger(where.location);
  cleanups.push(() => ledger.close());
  return ledger;
}

/** Makes the (empty, migrated) ledger the CLI expects to find. */
async function createLedger(): Promise<void> {
  await (await openLedger(where.location)).close();
}

const authorised = (eventId: string, paymentId: string) =>
  paymentEvent({
    eventId,
    paymentId,
    statusCode: 5,
    status: 'PENDING_CAPTURE',
    statusCategory: 'PENDING_MERCHANT',
    changeTime: '20261127100100',
  });
const captured = (eventId: string, paymentId: string) =>
  paymentEvent({
    eventId,
    paymentId,
    statusCode: 9,
    status: 'CAPTURED',
    statusCategory: 'COMPLETED',
    changeTime: '20261127100300',
  });
/** A poison event: statusCode is a string, so the worker refuses it as invalid. */
function poison(eventId: string, paymentId: string) {
  const event = captured(eventId, paymentId);
  (event.payment as { statusOutput: { statusCode: unknown } }).statusOutput.statusCode = '9';
  return event;
}

async function post(event: object): Promise<void> {
  expect((await deliver(web!.url, JSON.stringify(event))).status).toBe(200);
}

/**
 * Delivers an event while another connection holds the ledger's write lock (SQLite busy, or a PostgreSQL
 * statement timeout on the locked table): the job fails.
 */
async function deliverWhileLedgerLocked(event: Record<string, unknown>): Promise<void> {
  const eventId = String(event.id);
  const unlock = await lockLedgerWrites(where.location);
  try {
    await post(event);
    await waitFor(async () => (await web!.queue.getJobState(eventId)) === 'failed');
  } finally {
    await unlock();
  }
  await waitFor(async () => (await web!.ledger.getEvent(eventId))?.outcome === 'failed');
}

beforeEach(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paystate-cli-'));
  where = await newLedgerLocation(dir);
});

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  await web?.close();
  web = undefined;
  await where.drop();
  fs.rmSync(dir, { recursive: true, force: true });
});

interface FailedRow {
  eventId: string;
  paymentId: string | null;
  type: string;
  attempts: number;
  lastError: string;
  failedAt: string;
}
interface StatusView {
  stage: string;
  statusCode: number | null;
}
interface ReplayReport {
  dryRun: boolean;
  actionId: number | null;
  replayed: { eventId: string; outcome: string }[];
  payments: { paymentId: string; before: StatusView; after: StatusView; changed: boolean }[];
  skipped: { eventId: string; reason: string }[];
}
interface RebuildReport {
  checked: number;
  differences: { paymentId: string; ledger: StatusView; rebuilt: StatusView }[];
}

describe('paystate CLI', () => {
  it('takes a poison event through failed, a dry-run and a real replay, the action log and the consistency check', async () => {
    await startWeb();
    startWorker(await workerLedger());
    const X = '4100000001_0';
    const Y = '4100000002_0';

    await post(authorised('x-auth', X));
    await post(captured('y-capture', Y));
    await waitFor(async () => (await web!.ledger.getPayment(Y))?.stage === 'captured');
    await waitFor(async () => (await web!.ledger.getPayment(X))?.stage === 'authorised');
    // The capture of X is stored but never applied (the ledger locked on its only attempt).
    await deliverWhileLedgerLocked(captured('x-capture', X));
    await post(poison('x-poison', X));
    await waitFor(async () => (await web!.queue.getJobState('x-poison')) === 'failed');

    const failed = await json<FailedRow[]>(['failed', 'list']);
    const poisoned = failed.find((row) => row.eventId === 'x-poison');
    expect(poisoned).toMatchObject({ paymentId: X, type: 'payment.pending_capture', attempts: 1 });
    expect(poisoned?.lastError).toMatch(/invalid status event: payment\.statusOutput\.statusCode/);
    expect(failed.map((row) => row.eventId).sort()).toEqual(['x-capture', 'x-poison']);

    const snapshot = async () => ({
      payment: await web!.ledger.getPayment(X),
      events: await web!.ledger.listPaymentEvents(X),
      changes: await web!.ledger.listStateChanges(X),
      actions: await web!.ledger.listActions(10),
    });
    const before = await snapshot();
    const dryRun = await json<ReplayReport>(['replay', '--payment', X, '--dry-run']);
    expect(dryRun).toMatchObject({ dryRun: true, actionId: null, skipped: [] });
    expect(dryRun.payments).toEqual([
      expect.objectContaining({
        paymentId: X,
        before: expect.objectContaining({ stage: 'authorised', statusCode: 5 }),
        after: expect.objectContaining({ stage: 'captured', statusCode: 9 }),
        changed: true,
      }),
    ]);
    expect(await snapshot()).toEqual(before);

    const applied = await json<ReplayReport>([
      'replay',
      '--payment',
      X,
      '--reason',
      'capture lost to a locked ledger',
      '--actor',
      'alice',
    ]);
    // The poison is fed through again too: after a code fix it would apply; today it is still invalid.
    expect(applied.replayed.map(({ eventId, outcome }) => [eventId, outcome])).toEqual([
      ['x-auth', 'duplicate'],
      ['x-capture', 'applied'],
      ['x-poison', 'invalid'],
    ]);
    expect(await web!.ledger.getPayment(X)).toMatchObject({ stage: 'captured', statusCode: 9 });
    const replays = (await web!.ledger.listEvents({ source: 'replay', limit: 10 })).map((event) => [
      event.replayOf,
      event.actionId,
    ]);
    expect(replays).toEqual([
      ['x-auth', applied.actionId],
      ['x-capture', applied.actionId],
      ['x-poison', applied.actionId],
    ]);

    const [action] = await json<{ actor: string; reason: string; action: string; count: number }[]>([
      'actions',
    ]);
    expect(action).toMatchObject({
      actor: 'alice',
      reason: 'capture lost to a locked ledger',
      action: 'replay',
      count: 3,
    });

    // The replay row of a failed event is a stored event like any other: the recomputation must count it.
    expect((await json<RebuildReport>(['rebuild', '--dry-run'])).differences).toEqual([]);
    await runLedgerSql(where.location, 'UPDATE payments SET status_code = 5 WHERE id = ?', [Y]);
    const corrupted = await json<RebuildReport>(['rebuild', '--dry-run']);
    expect(corrupted.differences).toEqual([
      {
        paymentId: Y,
        ledger: expect.objectContaining({ statusCode: 5 }),
        rebuilt: expect.objectContaining({ statusCode: 9 }),
      },
    ]);
    const corrected = await json<RebuildReport & { actionId: number }>([
      'rebuild',
      '--reason',
      'status lost in a restore',
      '--actor',
      'alice',
    ]);
    expect(corrected).toMatchObject({ applied: true, changed: [], differences: [{ paymentId: Y }] });
    expect(await web!.ledger.getPayment(Y)).toMatchObject({ statusCode: 9, stage: 'captured' });
    const [rebuildAction] = await json<{ id: number; action: string; count: number }[]>(['actions']);
    expect(rebuildAction).toMatchObject({ id: corrected.actionId, action: 'rebuild', count: 1 });
    expect((await json<RebuildReport>(['rebuild', '--dry-run'])).differences).toEqual([]);
  }, 90_000);

  it('failed show prints the error, the stack trace and the raw event', async () => {
    await startWeb();
    startWorker(await workerLedger());
    await post(poison('p-1', '4100000003_0'));
    await waitFor(async () => (await web!.queue.getJobState('p-1')) === 'failed');
    const shown = await json<{
      state: string;
      lastError: string;
      stacktrace: string[];
      ledger: { outcome: string };
      rawEvent: { payment: { statusOutput: { statusCode: unknown } } };
    }>(['failed', 'show', 'p-1']);
    expect(shown.state).toBe('failed');
    expect(shown.lastError).toMatch(/statusCode/);
    expect(shown.stacktrace.join('\n')).toMatch(/InvalidStatusEventError/);
    expect(shown.ledger.outcome).toBe('invalid');
    expect(shown.rawEvent.payment.statusOutput.statusCode).toBe('9');
  }, 30_000);

  it('events lists stored events by outcome, and --follow prints new ones until Ctrl-C', async () => {
    await startWeb();
    startWorker(await workerLedger());
    const since = new Date().toISOString();
    await post(poison('v-1', '4100000009_0'));
    await waitFor(async () => (await web!.ledger.getEvent('v-1'))?.outcome === 'invalid');
    const invalid = await json<{ eventId: string; outcome: string }[]>(['events', '--outcome', 'invalid']);
    expect(invalid.map(({ eventId, outcome }) => [eventId, outcome])).toEqual([['v-1', 'invalid']]);

    const follower = spawn(
      process.execPath,
      ['--import', 'tsx', MAIN, 'events', '--follow', '--json', '--since', since],
      {
        cwd: ROOT,
        env: cliEnv({}),
      },
    );
    const exited = new Promise<number | null>((resolve) => follower.once('exit', (code) => resolve(code)));
    let output = '';
    follower.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    await waitFor(() => output.includes('"v-1"'));
    await post(authorised('v-2', '4100000009_0'));
    await waitFor(() => output.includes('"v-2"'));
    follower.kill('SIGINT');
    expect(await exited).toBe(0);
    expect(
      output
        .trim()
        .split('\n')
        .map((line) => (JSON.parse(line) as { eventId: string }).eventId),
    ).toEqual(['v-1', 'v-2']);
  }, 30_000);

  it('failed retry re-queues a failed job, which then completes, and records the action', async () => {
    await startWeb();
    startWorker(await workerLedger());
    const paymentId = '4100000004_0';
    await deliverWhileLedgerLocked(captured('r-1', paymentId));

    const result = await json<{ retried: string[] }>(['failed', 'retry', 'r-1', '--reason', 'lock released']);
    expect(result.retried).toEqual(['r-1']);
    await waitFor(async () => (await web!.queue.getJobState('r-1')) === 'completed');
    expect((await web!.ledger.getEvent('r-1'))?.outcome).toBe('applied');
    expect(await web!.ledger.getPayment(paymentId)).toMatchObject({ stage: 'captured' });
    expect((await web!.ledger.listActions(1))[0]).toMatchObject({
      actor: 'on-call',
      action: 'failed.retry',
      target: 'r-1',
      count: 1,
      reason: 'lock released',
    });
  }, 30_000);

  it('refuses failed retry --all without --yes when there is no terminal to ask', async () => {
    await startWeb();
    startWorker(await workerLedger());
    await post(poison('p-2', '4100000005_0'));
    await waitFor(async () => (await web!.queue.getJobState('p-2')) === 'failed');

    const result = await paystate(['failed', 'retry', '--all', '--reason', 'try again']);
    expectOneLineError(result, 2, /needs --yes/);
    expect(await web!.queue.getJobState('p-2')).toBe('failed');
    expect(await web!.ledger.listActions(10)).toEqual([]);
  }, 30_000);

  it('payment --json shows the state, the fulfilment decision and the timeline oldest first', async () => {
    await startWeb();
    startWorker(await workerLedger());
    const paymentId = '4100000006_0';
    await post(authorised('t-1', paymentId));
    await post(captured('t-2', paymentId));
    await waitFor(async () => (await web!.ledger.getPayment(paymentId))?.stage === 'captured');

    const shown = await json<{
      payment: Record<string, unknown>;
      timeline: { entry: string; eventId?: string; toStage?: string }[];
    }>(['payment', paymentId]);
    expect(shown.payment).toMatchObject({
      paymentId,
      statusCode: 9,
      stage: 'captured',
      fulfilment: { releasable: true, reason: 'captured' },
    });
    expect(shown.timeline.map((entry) => entry.eventId ?? entry.toStage)).toEqual([
      't-1',
      'authorised',
      't-2',
      'captured',
    ]);
  }, 30_000);

  describe('replay refuses', () => {
    const paymentId = '4100000010_0';
    beforeEach(async () => {
      await startWeb();
      startWorker(await workerLedger());
      await post(authorised('k-1', paymentId));
      await post(captured('k-2', paymentId));
      await waitFor(async () => (await web!.ledger.getPayment(paymentId))?.stage === 'captured');
    });

    it('an event whose stored signature the key ring no longer verifies (key rotated out)', async () => {
      const report = await json<ReplayReport>(['replay', '--event', 'k-2', '--dry-run'], {
        WEBHOOK_KEYS: 'key-old:old+secret/=',
      });
      expect(report.replayed).toEqual([]);
      expect(report.skipped).toEqual([
        { eventId: 'k-2', reason: 'stored signature not verified: unknown_key_id' },
      ]);
    }, 30_000);

    it('more events than --max', async () => {
      const result = await paystate(['replay', '--payment', paymentId, '--dry-run', '--max', '1']);
      expectOneLineError(result, 1, /more than --max 1 events match/);
    }, 30_000);
  });

  it('send --tampered is refused 401 by the real receiver; the untampered send is accepted', async () => {
    await startWeb();
    const file = path.join(dir, 'event.json');
    fs.writeFileSync(file, JSON.stringify(captured('s-1', '4100000007_0')));

    const tampered = await json<{ status: number; body: { error: string } }>([
      'send',
      '--file',
      file,
      '--tampered',
      '--url',
      web!.url,
    ]);
    expect(tampered).toMatchObject({ status: 401, body: { error: 'invalid_signature' } });
    const sent = await json<{ status: number; keyId: string }>(['send', '--file', file, '--url', web!.url]);
    expect(sent).toMatchObject({ status: 200, keyId: 'key-old' });
    expect(await web!.queue.getJobState('s-1')).not.toBe('unknown');
  }, 30_000);

  describe('platform checks against the simulator', () => {
    let simulator: PlatformSimulator;
    const env = () => ({
      PLATFORM_URL: simulator.url,
      PLATFORM_MERCHANT_ID: PLATFORM.merchantId,
      PLATFORM_API_KEY_ID: PLATFORM.apiKeyId,
      PLATFORM_API_SECRET: PLATFORM.apiSecret,
    });

    beforeEach(async () => {
      // The platform knows only the old webhook key: the new one is not generated in the portal yet.
      simulator = await startPlatformSimulator({
        ...PLATFORM,
        webhookKeys: parseKeyRing('key-old:old+secret/='),
      });
      cleanups.push(() => simulator.close());
    });

    it('keys check reports each configured key valid or invalid', async () => {
      const result = await paystate(['keys', 'check', '--json'], env());
      expect(JSON.parse(result.stdout)).toEqual([
        { keyId: 'key-old', result: 'valid', detail: null },
        { keyId: 'key-new', result: 'invalid', detail: null },
      ]);
      expectOneLineError(result, 1, /1 of 2 webhook key\(s\) not valid/);
      expect(simulator.requests.map((request) => request.status)).toEqual([200, 200]);
    }, 30_000);

    it('platform check probes the credentials', async () => {
      expect(await json(['platform', 'check'], env())).toEqual({ url: simulator.url, ok: true });
      const wrong = await paystate(['platform', 'check'], { ...env(), PLATFORM_API_SECRET: 'wrong' });
      expectOneLineError(wrong, 1, /platform check failed: authentication/);
    }, 30_000);

    it('reconcile polls the platform now and shows the state before and after', async () => {
      await createLedger();
      simulator.createPayment({ paymentId: '4100000008_0', amount: 1500 });
      const report = await json<{ before: unknown; after: StatusView; outcome: string }>(
        ['reconcile', '4100000008_0'],
        env(),
      );
      expect(report).toMatchObject({ before: null, outcome: 'applied', after: { stage: 'captured' } });
    }, 30_000);

    it('names the missing platform variables', async () => {
      const result = await paystate(['platform', 'check'], { PLATFORM_URL: simulator.url });
      expectOneLineError(
        result,
        1,
        /no platform credentials: set PLATFORM_MERCHANT_ID, PLATFORM_API_KEY_ID, PLATFORM_API_SECRET/,
      );
    }, 30_000);
  });

  describe('fails with one line and a non-zero exit', () => {
    it('on an unknown event id', async () => {
      await createLedger();
      expectOneLineError(
        await paystate(['failed', 'show', 'no-such-event']),
        1,
        /no job for event no-such-event/,
      );
      expectOneLineError(await paystate(['replay', '--event', 'no-such-event']), 1, /no stored event/);
    }, 30_000);

    it('fast when Redis is unreachable', async () => {
      await createLedger();
      const result = await paystate(['failed', 'list'], {
        REDIS_URL: `redis://127.0.0.1:${await freePort()}`,
      });
      expectOneLineError(result, 1, /cannot reach Redis at 127\.0\.0\.1:\d+/);
      expect(result.ms).toBeLessThan(8_000);
    }, 30_000);

    describeOn('sqlite')('on SQLite', () => {
      it('on a missing ledger, without creating one', async () => {
        const file = (where.location as { path: string }).path;
        expectOneLineError(await paystate(['actions']), 1, /no ledger at/);
        expect(fs.existsSync(file)).toBe(false);
      }, 30_000);
    });

    describeOn('postgres')('on PostgreSQL', () => {
      it('fast when the PostgreSQL server is unreachable', async () => {
        const result = await paystate(['actions'], {
          LEDGER_URL: `postgres://paystate@127.0.0.1:${await freePort()}/nowhere`,
        });
        expectOneLineError(
          result,
          1,
          /cannot open the ledger \(postgres 127\.0\.0\.1:\d+\/nowhere\): ledger unavailable: .*ECONNREFUSED/,
        );
        expect(result.ms).toBeLessThan(8_000);
      }, 30_000);
    });

    it('with exit 2 on bad arguments', async () => {
      expect((await paystate(['failed', 'list', '--limit', 'many'])).code).toBe(2);
      expect((await paystate(['no-such-command'])).code).toBe(2);
      await createLedger();
      expectOneLineError(await paystate(['replay', '--payment', 'x']), 2, /needs --reason/);
    }, 30_000);
  });

  it('--help lists the commands and exits 0', async () => {
    const result = await paystate(['--help']);
    expect(result.code).toBe(0);
    for (const command of [
      'failed',
      'replay',
      'payment',
      'events',
      'send',
      'keys',
      'reconcile',
      'rebuild',
      'actions',
    ]) {
      expect(result.stdout).toContain(command);
    }
  }, 30_000);
});

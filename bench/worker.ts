/**
 * bench:worker — N signed events through the `status-events` queue into the SQLite ledger, against a no-op
 * BullMQ worker draining the same jobs from the same private Redis in the same run. Prints jobs/s and the ratio.
 * Env: BENCH_EVENTS (20000), BENCH_ROUNDS (3), BENCH_CONCURRENCY (10), BENCH_JSON=1 or --json, BENCH_OUT.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import Database from 'better-sqlite3';
import { Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import { openSqliteLedger } from '../src/ledger';
import { createLogger } from '../src/log';
import { signWebhookBody } from '../src/platform';
import {
  STATUS_EVENTS_QUEUE,
  createRedisConnection,
  createStatusEventsQueue,
  createStatusWorker,
  type StatusEventJob,
} from '../src/queue';

const EVENTS_PER_PAYMENT = 5;
const N = Math.floor(Number(process.env.BENCH_EVENTS ?? 20_000) / EVENTS_PER_PAYMENT) * EVENTS_PER_PAYMENT;
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const C = Number(process.env.BENCH_CONCURRENCY ?? 10);
const JSON_OUT = process.argv.includes('--json') || process.env.BENCH_JSON === '1';
const TARGET = 0.7;
const KEY_ID = 'bench-key';
const SECRET = 'bench:secret==';

// Lifecycle created → authorised → capture requested → captured, then the capture re-sent under a new id.
const STEPS: [code: number, status: string, category: string][] = [
  [0, 'CREATED', 'CREATED'],
  [5, 'PENDING_CAPTURE', 'PENDING_MERCHANT'],
  [91, 'CAPTURE_REQUESTED', 'PENDING_CONNECT_OR_3RD_PARTY'],
  [9, 'CAPTURED', 'COMPLETED'],
  [9, 'CAPTURED', 'COMPLETED'],
];
const typeOf = (step: number) => `payment.${STEPS[step]![1].toLowerCase()}`;

/** A Direct-shaped payment event, as the platform sends it (one event per delivery). */
function eventBody(eventId: string, payment: number, step: number): string {
  const [statusCode, status, statusCategory] = STEPS[step]!;
  const changed = new Date(Date.UTC(2026, 10, 27, 10, Math.min(step, 3))); // the re-send repeats the capture's
  const card = { cardNumber: '***********7346', expiryDate: '1226', bin: '375418', countryCode: '99' };
  const fraudResults = { fraudServiceResult: 'accepted', avsResult: '0', cvvResult: '0' };
  const threeDSecureResults = { version: '2.2.0', flow: 'frictionless', eci: '5', liability: 'issuer' };
  return JSON.stringify({
    apiVersion: 'v1',
    created: changed.toISOString(),
    id: eventId,
    merchantId: 'BenchDirect',
    payment: {
      paymentOutput: {
        amountOfMoney: { amount: 1500, currencyCode: 'EUR' },
        references: { merchantReference: `bench-${payment}` },
        cardPaymentMethodSpecificOutput: { paymentProductId: 2, card, fraudResults, threeDSecureResults },
        paymentMethod: 'card',
      },
      status,
      statusOutput: {
        isCancellable: statusCode === 5,
        statusCategory,
        statusCode,
        statusCodeChangeDateTime: changed.toISOString().replace(/\D/g, '').slice(0, 14),
        isAuthorized: statusCode === 5 || statusCode === 91,
        isRefundable: statusCode === 9,
      },
      id: `${3_254_564_310 + payment}_0`,
    },
    type: typeOf(step),
  });
}

function buildJobs(): StatusEventJob[] {
  const jobs: StatusEventJob[] = [];
  for (let i = 0; i < N; i++) {
    const eventId = `bench-${String(i).padStart(8, '0')}`;
    const rawBody = eventBody(eventId, Math.floor(i / EVENTS_PER_PAYMENT), i % EVENTS_PER_PAYMENT);
    const type = typeOf(i % EVENTS_PER_PAYMENT);
    const signature = signWebhookBody(rawBody, SECRET);
    jobs.push({ eventId, type, keyId: KEY_ID, signature, rawBody, rawIndex: null, receivedAt: Date.now() });
  }
  return jobs;
}

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

const canConnect = (port: number) =>
  new Promise<boolean>((resolve) => {
    const socket = net.connect(port, '127.0.0.1', () => resolve(socket.destroy() !== undefined));
    socket.once('error', () => resolve(false));
  });

function median(xs: number[]): number {
  const sorted = [...xs].sort((x, y) => x - y);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

interface Run {
  jobsPerSec: number;
  /** CPU time of this (worker) process per job: user + system, µs. */
  cpuUsPerJob: number;
}

/** Times a worker from its creation until it has completed all N jobs. */
async function drain(url: string, makeWorker: (connection: Redis) => Worker): Promise<Run> {
  const connection = createRedisConnection(url, { role: 'worker' });
  let done = 0;
  const cpu = process.cpuUsage();
  const start = performance.now();
  const worker = makeWorker(connection);
  await new Promise<void>((resolve, reject) => {
    worker.on('completed', () => ++done === N && resolve());
    worker.on('failed', (job, error) => reject(new Error(`job ${job?.id} failed: ${error.message}`)));
  });
  const seconds = (performance.now() - start) / 1000;
  const used = process.cpuUsage(cpu);
  await worker.close();
  await connection.quit();
  return { jobsPerSec: N / seconds, cpuUsPerJob: (used.user + used.system) / N };
}

/** The ledger must hold every event once and every payment must end captured. */
function verify(file: string): string | undefined {
  const db = new Database(file, { readonly: true });
  const one = (query: string) => (db.prepare(query).get() as { n: number }).n;
  const events = one('select count(*) as n from events');
  const payments = one('select count(*) as n from payments');
  const notCaptured = one("select count(*) as n from payments where stage != 'captured'");
  const bad = one("select count(*) as n from events where outcome in ('invalid', 'failed', 'unknown_code')");
  db.close();
  const expected = N / EVENTS_PER_PAYMENT;
  if (events !== N || payments !== expected || notCaptured !== 0 || bad !== 0)
    return `events ${events}/${N}, payments ${payments}/${expected}, not captured ${notCaptured}, bad ${bad}`;
}

async function main() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paystate-bench-'));
  const port = await freePort();
  const args = `--port ${port} --bind 127.0.0.1 --appendonly no --maxmemory-policy noeviction --daemonize no`;
  const binary = process.env.REDIS_SERVER_BIN ?? 'redis-server';
  const redis = spawn(binary, [...args.split(' '), '--save', '', '--dir', dir], { stdio: 'ignore' });
  const cleanup = () => {
    redis.kill('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  };
  process.on('exit', cleanup);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => process.exit(130));

  for (let tries = 0; !(await canConnect(port)); tries++) {
    if (tries > 250) throw new Error(`redis-server did not listen on ${port}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  const url = `redis://127.0.0.1:${port}`;
  const log = createLogger({ level: 'info', json: true });
  log.silent = true;
  const producer = createRedisConnection(url, { role: 'producer' });
  const queue = createStatusEventsQueue(producer);
  await queue.waitUntilReady();
  const jobs = buildJobs();
  const prefill = async () => {
    await queue.obliterate({ force: true });
    for (let i = 0; i < jobs.length; i += 1000)
      await queue.addBulk(
        jobs.slice(i, i + 1000).map((data) => ({ name: data.type, data, opts: { jobId: data.eventId } })),
      );
  };
  const baseline = async () => {
    await prefill();
    return drain(url, (connection) => {
      const options = { connection, concurrency: C, maxStalledCount: 3 };
      return new Worker(STATUS_EVENTS_QUEUE, async () => undefined, options);
    });
  };
  const subject = async (round: number) => {
    await prefill();
    const file = path.join(dir, `ledger-${round}.db`);
    const ledger = openSqliteLedger({ path: file });
    const run = await drain(url, (connection) =>
      createStatusWorker({ connection, ledger, log, concurrency: C }),
    );
    await ledger.close();
    const problem = verify(file);
    if (problem) throw new Error(`round ${round}: ledger check failed: ${problem}`);
    return run;
  };

  const date = new Date().toISOString();
  const cores = os.cpus().length;
  console.log(
    `bench:worker  ${date}  cores ${cores}  node ${process.version}  N ${N}  C ${C}  rounds ${ROUNDS}`,
  );
  console.log('round  first   no-op jobs/s  ledger jobs/s  ratio   no-op CPU µs/job  ledger CPU µs/job');
  const rounds: { round: number; first: string; baseline: Run; subject: Run; ratio: number }[] = [];
  for (let round = 1; round <= ROUNDS; round++) {
    const first = round % 2 === 1 ? 'no-op' : 'ledger';
    const b = first === 'no-op' ? await baseline() : undefined;
    const s = await subject(round);
    const r = { round, first, baseline: b ?? (await baseline()), subject: s, ratio: 0 };
    r.ratio = r.subject.jobsPerSec / r.baseline.jobsPerSec;
    rounds.push(r);
    const cols = [r.baseline.jobsPerSec, r.subject.jobsPerSec].map((x) => x.toFixed(0).padStart(13));
    const cpus = [r.baseline.cpuUsPerJob, r.subject.cpuUsPerJob].map((x) => x.toFixed(0).padStart(17));
    console.log(
      `${String(round).padEnd(7)}${first.padEnd(7)}${cols.join(' ')}  ${r.ratio.toFixed(3)}${cpus.join(' ')}`,
    );
  }
  const medians = {
    baseline: median(rounds.map((r) => r.baseline.jobsPerSec)),
    subject: median(rounds.map((r) => r.subject.jobsPerSec)),
    ratio: median(rounds.map((r) => r.ratio)),
  };
  const met = medians.ratio >= TARGET;
  console.log(
    `median: no-op ${medians.baseline.toFixed(0)} jobs/s, ledger ${medians.subject.toFixed(0)} jobs/s, ` +
      `ratio ${(medians.ratio * 100).toFixed(1)} % (target ≥ ${TARGET * 100} %: ${met ? 'met' : 'NOT met'}); ` +
      'every ledger verified: N events, all payments captured',
  );
  if (JSON_OUT) {
    const result = { date, cores, node: process.version, N, C, target: TARGET, met, medians, rounds };
    const text = JSON.stringify(result, null, 2);
    if (process.env.BENCH_OUT) fs.writeFileSync(process.env.BENCH_OUT, `${text}\n`);
    else console.log(text);
  }
  await queue.close();
  await producer.quit();
}

main().then(
  () => process.exit(0),
  (error: Error) => {
    console.error(`bench:worker failed: ${error.stack ?? error.message}`);
    process.exit(1);
  },
);

/**
 * bench:worker — N signed events through the `status-events` queue into the ledger, on SQLite and on PostgreSQL (a
 * private server with fsync on, see bench/postgres-server.ts), against a no-op BullMQ worker draining the same
 * jobs from the same private Redis in the same round. Prints jobs/s and the ratio per backend, and the
 * share of CPU the hypervisor took from each drain (steal, /proc/stat).
 * The queue starts full, so the status worker runs as the worker process does behind a backlog: on SQLite at
 * WORKER_BACKLOG_CONCURRENCY's default (100; WORKER_CONCURRENCY's 10 until its first count of the waiting jobs), on
 * PostgreSQL at 10 throughout; the no-op worker runs at that same concurrency. BENCH_CONCURRENCY=C runs all at C.
 * Env: BENCH_EVENTS (20000), BENCH_ROUNDS (3), BENCH_CONCURRENCY, BENCH_BACKENDS (sqlite,postgres),
 * BENCH_JSON=1 or --json, BENCH_OUT.
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
import pg from 'pg';
import { DEFAULT_WORKER_BACKLOG_CONCURRENCY, DEFAULT_WORKER_CONCURRENCY } from '../src/config';
import { announcingWrites, openPgLedger, openSqliteLedger, type Ledger } from '../src/ledger';
import { createLogger } from '../src/log';
import { signWebhookBody } from '../src/platform';
import {
  STATUS_EVENTS_QUEUE,
  createChangeAnnouncer,
  createRedisConnection,
  createStatusEventsQueue,
  createStatusWorker,
  type StatusEventJob,
} from '../src/queue';
import { benchBackends, startBenchPostgres, type Backend, type BenchPostgres } from './postgres-server';
import { readMachineTicks, stolenShare } from './proc-cpu';

const EVENTS_PER_PAYMENT = 5;
const N = Math.floor(Number(process.env.BENCH_EVENTS ?? 20_000) / EVENTS_PER_PAYMENT) * EVENTS_PER_PAYMENT;
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
// The target is a share of the no-op worker at the same concurrency.
const FIXED = process.env.BENCH_CONCURRENCY ? Number(process.env.BENCH_CONCURRENCY) : undefined;
/** As src/config.ts sets them by default: jobs at once while the worker keeps up, and behind a backlog. */
const concurrencyOf = (backend: Backend) => ({
  base: FIXED ?? DEFAULT_WORKER_CONCURRENCY,
  backlog: FIXED ?? (backend === 'sqlite' ? DEFAULT_WORKER_BACKLOG_CONCURRENCY : DEFAULT_WORKER_CONCURRENCY),
});
const JSON_OUT = process.argv.includes('--json') || process.env.BENCH_JSON === '1';
const TARGET = 0.7;
/** A drain during which the hypervisor took less than this share of the machine's CPU counts as undisturbed. */
const CALM = 0.01;
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
  /** PostgreSQL only: CPU time of the database server's processes per job, µs. */
  serverCpuUsPerJob?: number;
  /** Share of the machine's CPU time the hypervisor gave to other guests during the drain. */
  stolen: number;
}

/** Times a worker from its creation until it has completed all N jobs. */
async function drain(
  url: string,
  makeWorker: (connection: Redis) => Worker,
  serverCpuUs?: () => number,
): Promise<Run> {
  const connection = createRedisConnection(url, { role: 'worker' });
  let done = 0;
  const cpu = process.cpuUsage();
  const machine = readMachineTicks();
  const serverCpu = serverCpuUs?.();
  const start = performance.now();
  const worker = makeWorker(connection);
  await new Promise<void>((resolve, reject) => {
    worker.on('completed', () => ++done === N && resolve());
    worker.on('failed', (job, error) => reject(new Error(`job ${job?.id} failed: ${error.message}`)));
  });
  const seconds = (performance.now() - start) / 1000;
  const used = process.cpuUsage(cpu);
  const stolen = stolenShare(machine);
  const server = serverCpu === undefined ? undefined : (serverCpuUs!() - serverCpu) / N;
  await worker.close();
  await connection.quit();
  return {
    jobsPerSec: N / seconds,
    cpuUsPerJob: (used.user + used.system) / N,
    stolen,
    ...(server === undefined ? {} : { serverCpuUsPerJob: server }),
  };
}

const CHECKS = {
  events: 'select count(*) as n from events',
  payments: 'select count(*) as n from payments',
  notCaptured: "select count(*) as n from payments where stage != 'captured'",
  bad: "select count(*) as n from events where outcome in ('invalid', 'failed', 'unknown_code')",
};
type Checked = Record<keyof typeof CHECKS, number>;

function countSqlite(file: string): Checked {
  const db = new Database(file, { readonly: true });
  const one = (query: string) => (db.prepare(query).get() as { n: number }).n;
  const counted = Object.fromEntries(Object.entries(CHECKS).map(([name, query]) => [name, one(query)]));
  db.close();
  return counted as Checked;
}

async function countPostgres(url: string): Promise<Checked> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  const counted: Record<string, number> = {};
  for (const [name, query] of Object.entries(CHECKS))
    counted[name] = Number((await client.query<{ n: string }>(query)).rows[0]!.n);
  await client.end();
  return counted as Checked;
}

/** The ledger must hold every event once and every payment must end captured. */
function verify({ events, payments, notCaptured, bad }: Checked): string | undefined {
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
  const baseline = async (concurrency: number) => {
    await prefill();
    return drain(url, (connection) => {
      const options = { connection, concurrency, maxStalledCount: 3 };
      return new Worker(STATUS_EVENTS_QUEUE, async () => undefined, options);
    });
  };
  const backends = benchBackends();
  let postgres: BenchPostgres | undefined;
  // startPostgres kills its server and removes its directory if this process exits without stop().
  if (backends.includes('postgres')) postgres = await startBenchPostgres();
  const subject = async (backend: Backend, round: number) => {
    await prefill();
    let ledger: Ledger;
    let check: () => Promise<Checked>;
    if (backend === 'sqlite') {
      const file = path.join(dir, `ledger-${round}.db`);
      // As workers/status-worker.ts opens it: WAL checkpoints from a thread of their own.
      ledger = openSqliteLedger({ path: file, backgroundCheckpointMs: 200 });
      check = async () => countSqlite(file);
    } else {
      // LEDGER_POOL_SIZE's default (10), as the worker process opens it.
      const databaseUrl = await postgres!.createDatabase(`bench_worker_${round}`);
      ledger = await openPgLedger({ url: databaseUrl });
      check = () => countPostgres(databaseUrl);
    }
    const run = await drain(
      url,
      // As workers/status-worker.ts runs it: each commit announced on the change channel.
      (connection) =>
        createStatusWorker({
          connection,
          ledger: announcingWrites(ledger, createChangeAnnouncer(connection)),
          log,
          concurrency: concurrencyOf(backend).base,
          backlogConcurrency: concurrencyOf(backend).backlog,
        }),
      backend === 'postgres' ? postgres!.cpuUs : undefined,
    );
    await ledger.close();
    const problem = verify(await check());
    if (problem) throw new Error(`round ${round} (${backend}): ledger check failed: ${problem}`);
    return run;
  };

  const date = new Date().toISOString();
  const cores = os.cpus().length;
  console.log(
    `bench:worker  ${date}  cores ${cores}  node ${process.version}  N ${N}  rounds ${ROUNDS}` +
      `  backends ${backends.join(',')}${postgres ? `  ${postgres.version}` : ''}`,
  );
  for (const backend of backends) {
    const { base, backlog } = concurrencyOf(backend);
    const status = base === backlog ? `${base}` : `${base}, ${backlog} behind a backlog`;
    console.log(`concurrency (${backend}): status worker ${status}; no-op worker ${backlog}`);
  }
  const baselineConcurrencies = [...new Set(backends.map((backend) => concurrencyOf(backend).backlog))];
  console.log(
    'round  first   backend   C    no-op jobs/s  ledger jobs/s  ratio   no-op CPU µs/job  ledger CPU µs/job' +
      (postgres ? '  db server CPU µs/job' : '') +
      '  stolen no-op/ledger',
  );
  interface Round {
    round: number;
    first: string;
    /** The no-op worker's run, by its concurrency. */
    baselines: Record<number, Run>;
    subjects: Partial<Record<Backend, Run>>;
    ratios: Partial<Record<Backend, number>>;
  }
  const rounds: Round[] = [];
  for (let round = 1; round <= ROUNDS; round++) {
    // The no-op worker goes first in odd rounds and last in even ones; the backends alternate their order too.
    const first = round % 2 === 1 ? 'no-op' : 'ledger';
    const order = round % 2 === 1 ? backends : [...backends].reverse();
    const baselines: Record<number, Run> = {};
    const runBaselines = async () => {
      for (const c of baselineConcurrencies) baselines[c] = await baseline(c);
    };
    if (first === 'no-op') await runBaselines();
    const subjects: Partial<Record<Backend, Run>> = {};
    for (const backend of order) subjects[backend] = await subject(backend, round);
    if (first !== 'no-op') await runBaselines();
    const r: Round = { round, first, baselines, subjects, ratios: {} };
    for (const backend of backends) {
      const c = concurrencyOf(backend).backlog;
      const b = baselines[c]!;
      const s = subjects[backend]!;
      const ratio = s.jobsPerSec / b.jobsPerSec;
      r.ratios[backend] = ratio;
      const cols = [b.jobsPerSec, s.jobsPerSec].map((x) => x.toFixed(0).padStart(13));
      const cpus = [b.cpuUsPerJob, s.cpuUsPerJob].map((x) => x.toFixed(0).padStart(17));
      const server = s.serverCpuUsPerJob === undefined ? '-' : s.serverCpuUsPerJob.toFixed(0);
      console.log(
        `${String(round).padEnd(7)}${first.padEnd(8)}${backend.padEnd(9)}${String(c).padEnd(3)}` +
          `${cols.join(' ')}  ${ratio.toFixed(3)}` +
          `${cpus.join(' ')}${postgres ? server.padStart(22) : ''}` +
          `  ${[b, s].map((run) => `${(run.stolen * 100).toFixed(1)} %`).join(' / ')}`,
      );
    }
    rounds.push(r);
  }
  const medians = Object.fromEntries(
    backends.map((backend) => [
      backend,
      {
        baselineJobsPerSec: median(
          rounds.map((r) => r.baselines[concurrencyOf(backend).backlog]!.jobsPerSec),
        ),
        jobsPerSec: median(rounds.map((r) => r.subjects[backend]!.jobsPerSec)),
        ratio: median(rounds.map((r) => r.ratios[backend]!)),
        cpuUsPerJob: median(rounds.map((r) => r.subjects[backend]!.cpuUsPerJob)),
        ...(backend === 'postgres'
          ? { serverCpuUsPerJob: median(rounds.map((r) => r.subjects.postgres!.serverCpuUsPerJob!)) }
          : {}),
      },
    ]),
  ) as Partial<
    Record<
      Backend,
      {
        baselineJobsPerSec: number;
        jobsPerSec: number;
        ratio: number;
        cpuUsPerJob: number;
        serverCpuUsPerJob?: number;
      }
    >
  >;
  const met = Object.fromEntries(backends.map((backend) => [backend, medians[backend]!.ratio >= TARGET]));
  for (const backend of backends) {
    const m = medians[backend]!;
    console.log(
      `median ${backend}: no-op ${m.baselineJobsPerSec.toFixed(0)} jobs/s, ledger ${m.jobsPerSec.toFixed(0)} jobs/s, ` +
        `ratio ${(m.ratio * 100).toFixed(1)} % (target ≥ ${TARGET * 100} %: ${met[backend] ? 'met' : 'NOT met'})`,
    );
    // Not the verdict, which counts every round: the rounds in which the host took no CPU from either drain.
    const calm = rounds.filter(
      (r) => r.baselines[concurrencyOf(backend).backlog]!.stolen < CALM && r.subjects[backend]!.stolen < CALM,
    );
    console.log(
      `  ${backend}, rounds with under ${CALM * 100} % stolen in both drains: ` +
        (calm.length
          ? `${calm.length}, ratio median ${(median(calm.map((r) => r.ratios[backend]!)) * 100).toFixed(1)} %`
          : 'none'),
    );
  }
  if (medians.sqlite && medians.postgres) {
    const perRound = rounds.map((r) => r.subjects.postgres!.jobsPerSec / r.subjects.sqlite!.jobsPerSec);
    console.log(
      `postgres / sqlite jobs/s: median ${(median(perRound) * 100).toFixed(1)} % ` +
        `(rounds: ${perRound.map((x) => `${(x * 100).toFixed(1)} %`).join(', ')})`,
    );
  }
  console.log('every ledger verified: N events, all payments captured');
  if (JSON_OUT) {
    const result = {
      date,
      cores,
      node: process.version,
      postgres: postgres?.version ?? null,
      N,
      concurrency: Object.fromEntries(backends.map((backend) => [backend, concurrencyOf(backend)])),
      backends,
      target: TARGET,
      met,
      medians,
      rounds,
    };
    const text = JSON.stringify(result, null, 2);
    if (process.env.BENCH_OUT) fs.writeFileSync(process.env.BENCH_OUT, `${text}\n`);
    else console.log(text);
  }
  await postgres?.stop();
  postgres = undefined;
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

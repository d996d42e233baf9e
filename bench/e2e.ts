/**
 * bench:e2e — a steady stream of signed deliveries through receiver → queue → worker → ledger, with the web and
 * worker processes started from dist/ as the Procfile does, once per ledger backend: SQLite (LEDGER_PATH), then
 * PostgreSQL (LEDGER_URL, a private server with fsync on, see bench/postgres-server.ts), each with its own fresh
 * Redis and ledger. Latency is from a delivery's start to its change appearing on the change feed
 * (GET /v1/changes long-poll, i.e. readable through the API). Peak RSS of each process is sampled every second.
 * The SQLite run is the baseline the PostgreSQL figures are compared with.
 * web and worker run as deployed (NODE_ENV=production: JSON log lines at the default level, info, to a file).
 * Usage: npm run bench:e2e  (BENCH_RATE=1000 BENCH_SECONDS=60 BENCH_WARMUP_SECONDS=5 BENCH_BACKENDS=sqlite,postgres
 * BENCH_LOG_LEVEL)
 */
import { fork, spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { freePort, redisServerArgs, waitForPort } from '../src/local';
import { signWebhookBody } from '../src/platform';
import { benchBackends, startBenchPostgres, type Backend, type BenchPostgres } from './postgres-server';
import { cpuSecondsOf, readMachineTicks, stolenShare } from './proc-cpu';

const RATE = Number(process.env.BENCH_RATE ?? 1000);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 60);
/** Seconds at the same rate before measuring, so JIT compilation and cold caches do not count as the steady state. */
const WARMUP_SECONDS = Number(process.env.BENCH_WARMUP_SECONDS ?? 5);
const KEY = { keyId: 'bench-key', secret: 'bench+secret/=' };
const TOKEN = 'bench-token';
/** After the last delivery, how long the follower waits for a change before it gives up on the rest. */
const STALL_MS = Number(process.env.BENCH_STALL_SECONDS ?? 30) * 1000;

const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });

function request(
  port: number,
  method: string,
  urlPath: string,
  body?: string,
  headers: Record<string, string> = {},
) {
  return new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path: urlPath, agent, headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => (text += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

function rssMb(pid: number): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024;
}

const percentile = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? NaN;

interface Result {
  backend: Backend;
  /** Deliveries sent before measuring (not in the figures below), and their tail. */
  warmup: { deliveries: number; readable: number; p99: number };
  sent: number;
  sendSeconds: number;
  acked: number;
  readable: number;
  /** From the first delivery until the last change was readable (or the follower gave up). */
  drainSeconds: number;
  p50: number;
  p99: number;
  max: number;
  /** Deliveries over 50 ms, by the second (from the first delivery) they were sent in: where the tail comes from. */
  slowBySecond: Record<number, number>;
  peakRss: { web: number; worker: number };
  /** CPU seconds each process used from the first delivery until the last change was readable. */
  cpuSeconds: { web: number; worker: number; redis: number; bench: number };
  /** Share of the machine's CPU time the hypervisor gave to other guests over the measured run. */
  stolen: number;
  /** Change-feed pages the follower read (each a GET /v1/changes long-poll). */
  pagesRead: number;
  /** Requests that failed (connection errors, or a feed read not answered 200), and the last message. */
  errors: { deliveries: number; feedReads: number; last: string };
  /** How each process had ended before the bench stopped it (null: still running, as it should). */
  exits: { web: string | null; worker: string | null };
  /** Log level of web and worker, and the lines they wrote over the whole run (warm-up included). */
  logs: { level: string; lines: number; warnings: number; notJson: number };
  /** PostgreSQL only: CPU seconds of the database server's processes during the run. */
  serverCpuSeconds?: number;
}

const exitOf = (child: ChildProcess): string | null =>
  child.exitCode !== null ? `exit ${child.exitCode}` : child.signalCode !== null ? child.signalCode : null;

async function runBackend(backend: Backend, postgres: BenchPostgres | undefined): Promise<Result> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paystate-bench-e2e-'));
  const [redisPort, webPort] = [await freePort(), await freePort()];
  const children: ChildProcess[] = [];
  const redis = spawn('redis-server', redisServerArgs({ port: redisPort, dir }), { stdio: 'ignore' });
  children.push(redis);
  await waitForPort(redisPort, 5_000);
  const ledgerEnv =
    backend === 'sqlite'
      ? { LEDGER_PATH: path.join(dir, 'ledger.db') }
      : { LEDGER_URL: await postgres!.createDatabase(`bench_e2e_${Date.now()}`) };
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    // As deployed: JSON log lines, the queue board mounted.
    NODE_ENV: 'production',
    ADMIN_TOKEN: 'bench-admin-token',
    PORT: String(webPort),
    REDIS_URL: `redis://127.0.0.1:${redisPort}`,
    WEBHOOK_KEYS: `${KEY.keyId}:${KEY.secret}`,
    API_TOKENS: TOKEN,
    ...ledgerEnv,
  };
  delete env[backend === 'sqlite' ? 'LEDGER_URL' : 'LEDGER_PATH'];
  // The default log level (info: no line per event), written to a file as a deployment hands its logs to a
  // collector; BENCH_LOG_LEVEL=debug adds a line per webhook accepted and per event applied (two a delivery).
  if (process.env.BENCH_LOG_LEVEL) env.LOG_LEVEL = process.env.BENCH_LOG_LEVEL;
  else delete env.LOG_LEVEL;
  const logFile = path.join(dir, 'processes.log');
  const logFd = fs.openSync(logFile, 'a');
  const root = path.join(__dirname, '..');
  // The Procfile's node flags (the young generation's size), so the RSS measured is the deployment's.
  const execArgv = ['--max-semi-space-size=2', '--heap-growing-percent=20'];
  const stdio: StdioOptions = ['ignore', logFd, 'inherit', 'ipc'];
  const web = fork(path.join(root, 'src/http/server.js'), [], { env, stdio, execArgv });
  const worker = fork(path.join(root, 'workers/status-worker.js'), [], { env, stdio, execArgv });
  children.push(web, worker);
  const peak = { web: 0, worker: 0 };
  const sampler = setInterval(() => {
    peak.web = Math.max(peak.web, rssMb(web.pid!));
    peak.worker = Math.max(peak.worker, rssMb(worker.pid!));
  }, 1000);
  try {
    for (let i = 0; i < 100; i++) {
      if ((await request(webPort, 'GET', '/readyz').catch(() => ({ status: 0 }))).status === 200) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const serverCpu = backend === 'postgres' ? postgres!.cpuUs() : undefined;
    const started = new Map<string, number>();
    const latencies: number[] = [];
    const warmupStarted = new Map<string, number>();
    const warmupLatencies: number[] = [];
    const slowBySecond: Record<number, number> = {};
    let begin = performance.now();
    let lastChangeAt = performance.now();
    let following = true;
    const errors = { deliveries: 0, feedReads: 0, last: '' };
    let pagesRead = 0;
    const follow = (async () => {
      let cursor = '0';
      while (following) {
        let page: { status: number; body: string };
        try {
          page = await request(webPort, 'GET', `/v1/changes?after=${cursor}&limit=1000&wait=1`, undefined, {
            authorization: `Bearer ${TOKEN}`,
          });
          if (page.status !== 200) throw new Error(`GET /v1/changes answered ${page.status}`);
        } catch (error) {
          // Counted and reported; a web process that died shows as readable < acked and in the exit status.
          errors.feedReads += 1;
          errors.last = (error as Error).message;
          await new Promise((resolve) => setTimeout(resolve, 100));
          continue;
        }
        const { changes, next } = JSON.parse(page.body) as { changes: { paymentId: string }[]; next: string };
        const now = performance.now();
        for (const change of changes) {
          const warmAt = warmupStarted.get(change.paymentId);
          if (warmAt !== undefined) warmupLatencies.push(now - warmAt);
          const at = started.get(change.paymentId);
          if (at === undefined) continue;
          latencies.push(now - at);
          if (now - at > 50) {
            const second = Math.floor((at - begin) / 1000);
            slowBySecond[second] = (slowBySecond[second] ?? 0) + 1;
          }
        }
        if (changes.length) lastChangeAt = now;
        cursor = next;
        pagesRead += 1;
      }
    })();

    let sent = 0;
    let acked = 0;
    const pending: Promise<void>[] = [];
    const cpuAt = () => ({
      web: cpuSecondsOf(web.pid!),
      worker: cpuSecondsOf(worker.pid!),
      redis: cpuSecondsOf(redis.pid!),
      bench: cpuSecondsOf(process.pid),
    });
    const warmupCount = RATE * WARMUP_SECONDS;
    let cpuBefore = cpuAt();
    let machineBefore = readMachineTicks();
    const paceFrom = performance.now();
    for (let n = 0; n < warmupCount + RATE * SECONDS; n++) {
      const due = paceFrom + (n * 1000) / RATE;
      const wait = due - performance.now();
      if (wait > 1) await new Promise((resolve) => setTimeout(resolve, wait));
      const paymentId = `${5000000000 + n}_0`;
      const body = JSON.stringify({
        apiVersion: 'v1',
        created: new Date().toISOString(),
        id: `e2e-${n}`,
        merchantId: 'BenchMerchant',
        type: 'payment.captured',
        payment: {
          id: paymentId,
          status: 'CAPTURED',
          statusOutput: {
            statusCode: 9,
            statusCategory: 'COMPLETED',
            statusCodeChangeDateTime: '20261127100000',
          },
          paymentOutput: {
            amountOfMoney: { amount: 1500, currencyCode: 'EUR' },
            references: { merchantReference: `o-${n}` },
          },
        },
      });
      const warm = n < warmupCount;
      if (n === warmupCount) {
        cpuBefore = cpuAt();
        machineBefore = readMachineTicks();
        begin = performance.now();
      }
      (warm ? warmupStarted : started).set(paymentId, performance.now());
      if (!warm) sent += 1;
      pending.push(
        request(webPort, 'POST', '/webhooks', body, {
          'content-type': 'application/json',
          'x-gcs-keyid': KEY.keyId,
          'x-gcs-signature': signWebhookBody(body, KEY.secret),
        }).then(
          (res) => void (res.status === 200 && !warm && (acked += 1)),
          (error: Error) => {
            errors.deliveries += 1;
            errors.last = error.message;
          },
        ),
      );
    }
    await Promise.all(pending);
    const sendSeconds = (performance.now() - begin) / 1000;
    // A backlog drains for as long as changes keep coming; the follower gives up after STALL_MS without one.
    lastChangeAt = Math.max(lastChangeAt, performance.now());
    while (latencies.length < acked && performance.now() - lastChangeAt < STALL_MS)
      await new Promise((resolve) => setTimeout(resolve, 200));
    const drainSeconds = (performance.now() - begin) / 1000;
    const cpuAfter = cpuAt();
    const stolen = stolenShare(machineBefore);
    const cpuSeconds = {
      web: cpuAfter.web - cpuBefore.web,
      worker: cpuAfter.worker - cpuBefore.worker,
      redis: cpuAfter.redis - cpuBefore.redis,
      bench: cpuAfter.bench - cpuBefore.bench,
    };
    following = false;
    await follow;
    latencies.sort((a, b) => a - b);
    warmupLatencies.sort((a, b) => a - b);
    return {
      warmup: {
        deliveries: warmupCount,
        readable: warmupLatencies.length,
        p99: percentile(warmupLatencies, 0.99),
      },
      backend,
      sent,
      sendSeconds,
      acked,
      readable: latencies.length,
      drainSeconds,
      p50: percentile(latencies, 0.5),
      p99: percentile(latencies, 0.99),
      max: latencies.at(-1) ?? NaN,
      slowBySecond,
      peakRss: { ...peak },
      cpuSeconds,
      stolen,
      pagesRead,
      errors,
      exits: { web: exitOf(web), worker: exitOf(worker) },
      logs: { level: env.LOG_LEVEL ?? 'info (default)', ...countLines(logFile) },
      ...(serverCpu === undefined ? {} : { serverCpuSeconds: (postgres!.cpuUs() - serverCpu) / 1e6 }),
    };
  } finally {
    clearInterval(sampler);
    for (const child of children) child.kill('SIGKILL');
    fs.closeSync(logFd);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function countLines(file: string): { lines: number; warnings: number; notJson: number } {
  const lines = fs.readFileSync(file, 'utf8').split('\n').filter(Boolean);
  const levelOf = (line: string) => {
    try {
      return (JSON.parse(line) as { level?: string }).level;
    } catch {
      return undefined;
    }
  };
  const levels = lines.map(levelOf);
  return {
    lines: lines.length,
    warnings: levels.filter((level) => level === 'warn' || level === 'error').length,
    notJson: levels.filter((level) => level === undefined).length,
  };
}

function print(result: Result): void {
  const { sent, sendSeconds, acked, readable } = result;
  console.log(`-- ${result.backend}`);
  console.log(
    `warm-up (not measured): ${result.warmup.deliveries} deliveries in ${WARMUP_SECONDS} s, ${result.warmup.readable} readable, p99 ${result.warmup.p99.toFixed(1)} ms`,
  );
  console.log(
    `target ${RATE}/s for ${SECONDS}s: sent ${sent} in ${sendSeconds.toFixed(1)} s (${(sent / sendSeconds).toFixed(0)}/s), acked ${acked}, applied and readable ${readable}` +
      (readable < acked ? ` (follower gave up after ${STALL_MS / 1000} s without a change)` : '') +
      `; last readable ${result.drainSeconds.toFixed(1)} s after the first delivery ` +
      `(${(readable / result.drainSeconds).toFixed(0)}/s sustained)`,
  );
  console.log(
    `delivery → readable: p50 ${result.p50.toFixed(1)} ms  p99 ${result.p99.toFixed(1)} ms  max ${result.max.toFixed(1)} ms (target p99 < 50 ms)`,
  );
  const slow = Object.entries(result.slowBySecond).sort(([, a], [, b]) => b - a);
  const slowTotal = slow.reduce((sum, [, count]) => sum + count, 0);
  console.log(
    `over 50 ms: ${slowTotal} deliveries, sent in ${slow.length} of the run's seconds` +
      (slow.length
        ? `; most in seconds ${slow
            .slice(0, 8)
            .map(([second, count]) => `${second} (${count})`)
            .join(', ')}`
        : ''),
  );
  const { errors, exits } = result;
  if (errors.deliveries || errors.feedReads)
    console.log(
      `request errors: deliveries ${errors.deliveries}, feed reads ${errors.feedReads} (last: ${errors.last})`,
    );
  if (exits.web || exits.worker)
    console.log(
      `processes ended during the run: web ${exits.web ?? 'running'}, worker ${exits.worker ?? 'running'}`,
    );
  console.log(
    `CPU over the run, share of one core: ` +
      Object.entries(result.cpuSeconds)
        .map(([name, seconds]) => `${name} ${((seconds / result.drainSeconds) * 100).toFixed(0)} %`)
        .join(', ') +
      `; the follower read ${result.pagesRead} feed pages (${(result.readable / Math.max(1, result.pagesRead)).toFixed(1)} changes each)`,
  );
  console.log(
    `stolen by the hypervisor: ${(result.stolen * 100).toFixed(1)} % of the machine's CPU time over the run`,
  );
  console.log(
    `log level ${result.logs.level}: web and worker wrote ${result.logs.lines} lines, ${result.logs.warnings} of them warn or error, ${result.logs.notJson} not JSON`,
  );
  console.log(
    `peak RSS: web ${result.peakRss.web.toFixed(0)} MB, worker ${result.peakRss.worker.toFixed(0)} MB (target < 150 MB each)` +
      (result.serverCpuSeconds === undefined
        ? ''
        : `; PostgreSQL server CPU ${result.serverCpuSeconds.toFixed(1)} s`),
  );
}

async function main() {
  const backends = benchBackends();
  // startPostgres kills its server and removes its directory if this process exits without stop().
  const postgres = backends.includes('postgres') ? await startBenchPostgres() : undefined;
  console.log(
    `bench:e2e  ${new Date().toISOString()}  cores=${os.cpus().length}  node=${process.version}  backends=${backends.join(',')}` +
      (postgres ? `  ${postgres.version}` : ''),
  );
  const results: Result[] = [];
  try {
    for (const backend of backends) {
      const result = await runBackend(backend, postgres);
      print(result);
      results.push(result);
    }
  } finally {
    agent.destroy();
    await postgres?.stop();
  }
  const [sqlite, pg] = [
    results.find((r) => r.backend === 'sqlite'),
    results.find((r) => r.backend === 'postgres'),
  ];
  if (sqlite && pg) {
    const ratio = (a: number, b: number) => `${(a / b).toFixed(2)}x`;
    console.log(
      `postgres vs sqlite (same run): p50 ${ratio(pg.p50, sqlite.p50)}, p99 ${ratio(pg.p99, sqlite.p99)}, ` +
        `readable ${pg.readable}/${sqlite.readable}, drain ${ratio(pg.drainSeconds, sqlite.drainSeconds)}, ` +
        `peak RSS web ${ratio(pg.peakRss.web, sqlite.peakRss.web)}, worker ${ratio(pg.peakRss.worker, sqlite.peakRss.worker)}`,
    );
  }
  if (process.argv.includes('--json') || process.env.BENCH_JSON === '1') {
    const text = JSON.stringify(
      { rate: RATE, seconds: SECONDS, postgres: postgres?.version ?? null, results },
      null,
      2,
    );
    if (process.env.BENCH_OUT) fs.writeFileSync(process.env.BENCH_OUT, `${text}\n`);
    else console.log(text);
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);

/**
 * bench:ingest — signed deliveries against POST /webhooks with autocannon, against a bare Express endpoint
 * answering 200 measured in the same run (absolute figures drift on a shared machine; the ratio is the result).
 * Also p50/p99 at a fixed 1,000 req/s. Usage: npm run bench:ingest (BENCH_SECONDS=10 BENCH_CONNECTIONS=10)
 */
import { fork, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import autocannon from 'autocannon';
import { freePort, redisServerArgs, waitForPort } from '../src/local';
import { signWebhookBody } from '../src/platform';
import { BENCH_KEY } from './ingest-server';
import { cpuSecondsOf } from './proc-cpu';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 10);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 4);

function delivery(n: number) {
  const body = JSON.stringify({
    apiVersion: 'v1',
    created: '2026-11-27T10:00:00.000+01:00',
    id: `ingest-${n}`,
    merchantId: 'BenchMerchant',
    type: 'payment.captured',
    payment: {
      id: `${4000000000 + n}_0`,
      status: 'CAPTURED',
      statusOutput: {
        statusCode: 9,
        statusCategory: 'COMPLETED',
        statusCodeChangeDateTime: '20261127100000',
      },
      paymentOutput: {
        amountOfMoney: { amount: 1500, currencyCode: 'EUR' },
        references: { merchantReference: `order-${n}` },
        cardPaymentMethodSpecificOutput: { paymentProductId: 2, card: { cardNumber: '***********7346' } },
      },
    },
  });
  return {
    method: 'POST' as const,
    path: '/webhooks',
    body,
    headers: {
      'content-type': 'application/json',
      'x-gcs-keyid': BENCH_KEY.keyId,
      'x-gcs-signature': signWebhookBody(body, BENCH_KEY.secret),
    },
  };
}

const REQUESTS = Array.from({ length: 5000 }, (_, n) => delivery(n));

async function startServer(mode: 'bare' | 'receiver', redisUrl: string, ledgerPath: string) {
  const port = await freePort();
  const child = fork(path.join(__dirname, 'ingest-server.js'), [mode, String(port), redisUrl, ledgerPath], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  await new Promise<void>((resolve, reject) => {
    child.once('message', () => resolve());
    child.once('exit', (code) => reject(new Error(`${mode} server exited with ${code}`)));
  });
  return { child, url: `http://127.0.0.1:${port}` };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length / 2;
  return Number.isInteger(middle) ? (sorted[middle - 1]! + sorted[middle]!) / 2 : sorted[Math.floor(middle)]!;
}

async function stop(child: ChildProcess) {
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  await exited;
}

/** Load against `url`, with the CPU time per request that the server and Redis spent meanwhile. */
async function load(url: string, pids: { server: number; redis: number }, overallRate?: number) {
  const before = { server: cpuSecondsOf(pids.server), redis: cpuSecondsOf(pids.redis) };
  const result = await autocannon({
    url,
    // autocannon paces a fixed rate per second across its connections, so with several connections its own
    // bursts show up as a latency tail even against the bare endpoint; one connection measures the server.
    connections: overallRate ? 1 : CONNECTIONS,
    duration: SECONDS,
    requests: REQUESTS,
    ...(overallRate ? { overallRate } : {}),
  });
  const non2xx = result.non2xx + result.errors;
  const perRequest = (pid: number, from: number) =>
    ((cpuSecondsOf(pid) - from) * 1e6) / result.requests.total;
  return {
    rps: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    non2xx,
    serverCpu: perRequest(pids.server, before.server),
    redisCpu: perRequest(pids.redis, before.redis),
  };
}

async function main() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paystate-bench-ingest-'));
  const redisPort = await freePort();
  const redis = spawn('redis-server', redisServerArgs({ port: redisPort, dir, appendonly: false }), {
    stdio: 'ignore',
  });
  const redisUrl = `redis://127.0.0.1:${redisPort}`;
  await waitForPort(redisPort, 5_000);
  try {
    console.log(
      `bench:ingest  ${new Date().toISOString()}  cores=${os.cpus().length}  node=${process.version}  connections=${CONNECTIONS}  ${SECONDS}s per run`,
    );
    const ratios: number[] = [];
    for (let round = 1; round <= ROUNDS; round++) {
      const figures: Record<string, Awaited<ReturnType<typeof load>>> = {};
      // Alternating which goes first spreads the box's drift over both sides.
      const order = round % 2 === 1 ? (['bare', 'receiver'] as const) : (['receiver', 'bare'] as const);
      for (const mode of order) {
        const server = await startServer(mode, redisUrl, path.join(dir, `ledger-${round}.db`));
        const pids = { server: server.child.pid!, redis: redis.pid! };
        await load(server.url, pids).catch(() => undefined); // warm-up
        figures[mode] = await load(server.url, pids);
        await stop(server.child);
      }
      const ratio = figures.receiver!.rps / figures.bare!.rps;
      ratios.push(ratio);
      for (const mode of order) {
        const f = figures[mode]!;
        console.log(
          `round ${round} ${mode.padEnd(8)} ${f.rps.toFixed(0).padStart(6)} req/s  p50 ${f.p50} ms  p99 ${f.p99} ms  non-2xx ${f.non2xx}` +
            `  CPU µs/req: server ${f.serverCpu.toFixed(0)}, redis ${f.redisCpu.toFixed(0)}`,
        );
      }
      console.log(`round ${round} ratio receiver/bare: ${(ratio * 100).toFixed(1)} %`);
    }
    const fixed: Record<string, Awaited<ReturnType<typeof load>>> = {};
    for (const mode of ['bare', 'receiver'] as const) {
      const server = await startServer(mode, redisUrl, path.join(dir, 'ledger-rate.db'));
      const pids = { server: server.child.pid!, redis: redis.pid! };
      await load(server.url, pids).catch(() => undefined); // warm-up, as for the runs above
      fixed[mode] = await load(server.url, pids, 1000);
      await stop(server.child);
    }
    console.log(`median ratio: ${(median(ratios) * 100).toFixed(1)} % (target ≥ 80 %)`);
    for (const [mode, f] of Object.entries(fixed)) {
      console.log(
        `${mode.padEnd(8)} at 1,000 req/s (1 connection): p50 ${f.p50} ms  p99 ${f.p99} ms  non-2xx ${f.non2xx}`,
      );
    }
    console.log('target: receiver p99 < 10 ms at 1,000 req/s');
  } finally {
    redis.kill('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});

/**
 * bench:e2e — a steady stream of signed deliveries through receiver → queue → worker → ledger, with the web and
 * worker processes started from dist/ as the Procfile does. Latency is from a delivery's start to its change
 * appearing on the change feed (GET /v1/changes long-poll, i.e. readable through the API). Peak RSS of each
 * process is sampled every second. Usage: npm run bench:e2e  (BENCH_RATE=1000 BENCH_SECONDS=60)
 */
import { fork, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { freePort, redisServerArgs, waitForPort } from '../src/local';
import { signWebhookBody } from '../src/platform';

const RATE = Number(process.env.BENCH_RATE ?? 1000);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 60);
const KEY = { keyId: 'bench-key', secret: 'bench+secret/=' };
const TOKEN = 'bench-token';

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

async function main() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paystate-bench-e2e-'));
  const [redisPort, webPort] = [await freePort(), await freePort()];
  const children: ChildProcess[] = [];
  children.push(spawn('redis-server', redisServerArgs({ port: redisPort, dir }), { stdio: 'ignore' }));
  await waitForPort(redisPort, 5_000);
  const env = {
    ...process.env,
    NODE_ENV: 'development',
    LOG_LEVEL: 'warn',
    PORT: String(webPort),
    REDIS_URL: `redis://127.0.0.1:${redisPort}`,
    LEDGER_PATH: path.join(dir, 'ledger.db'),
    WEBHOOK_KEYS: `${KEY.keyId}:${KEY.secret}`,
    API_TOKENS: TOKEN,
  };
  const root = path.join(__dirname, '..');
  const web = fork(path.join(root, 'src/http/server.js'), [], { env, stdio: 'inherit' });
  const worker = fork(path.join(root, 'workers/status-worker.js'), [], { env, stdio: 'inherit' });
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
    const started = new Map<string, number>();
    const latencies: number[] = [];
    let following = true;
    const follow = (async () => {
      let cursor = '0';
      while (following) {
        const page = await request(
          webPort,
          'GET',
          `/v1/changes?after=${cursor}&limit=1000&wait=1`,
          undefined,
          { authorization: `Bearer ${TOKEN}` },
        );
        const { changes, next } = JSON.parse(page.body) as { changes: { paymentId: string }[]; next: string };
        const now = performance.now();
        for (const change of changes) {
          const at = started.get(change.paymentId);
          if (at !== undefined) latencies.push(now - at);
        }
        cursor = next;
      }
    })();

    let sent = 0;
    let acked = 0;
    const pending: Promise<void>[] = [];
    const begin = performance.now();
    for (let n = 0; n < RATE * SECONDS; n++) {
      const due = begin + (n * 1000) / RATE;
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
      started.set(paymentId, performance.now());
      sent += 1;
      pending.push(
        request(webPort, 'POST', '/webhooks', body, {
          'content-type': 'application/json',
          'x-gcs-keyid': KEY.keyId,
          'x-gcs-signature': signWebhookBody(body, KEY.secret),
        }).then((res) => void (res.status === 200 && (acked += 1))),
      );
    }
    await Promise.all(pending);
    const sendSeconds = (performance.now() - begin) / 1000;
    const deadline = Date.now() + 120_000;
    while (latencies.length < acked && Date.now() < deadline)
      await new Promise((resolve) => setTimeout(resolve, 200));
    following = false;
    await follow;
    latencies.sort((a, b) => a - b);
    console.log(`bench:e2e  ${new Date().toISOString()}  cores=${os.cpus().length}  node=${process.version}`);
    console.log(
      `target ${RATE}/s for ${SECONDS}s: sent ${sent} in ${sendSeconds.toFixed(1)} s (${(sent / sendSeconds).toFixed(0)}/s), acked ${acked}, applied and readable ${latencies.length}`,
    );
    console.log(
      `delivery → readable: p50 ${percentile(latencies, 0.5).toFixed(1)} ms  p99 ${percentile(latencies, 0.99).toFixed(1)} ms  max ${latencies.at(-1)?.toFixed(1)} ms (target p99 < 50 ms)`,
    );
    console.log(
      `peak RSS: web ${peak.web.toFixed(0)} MB, worker ${peak.worker.toFixed(0)} MB (target < 150 MB each)`,
    );
  } finally {
    clearInterval(sampler);
    for (const child of children) child.kill('SIGKILL');
    agent.destroy();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});

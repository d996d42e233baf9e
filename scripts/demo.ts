/**
 * `npm run demo`: a private Redis, the three Procfile processes and the platform simulator; the simulator plays
 * five payments and the demo prints the ledger's view of each, then stops everything it started.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort, redisServerArgs, waitForPort } from '../src/local';
import { startPlatformSimulator, type PlatformSimulator, type SimulatedPayment } from '../src/simulator';

const ROOT = path.join(__dirname, '..');
const WEBHOOK_KEY = { keyId: 'demo-key', secret: 'demo-secret+/=' };
const API_TOKEN = 'demo-token';
const CREDENTIALS = { merchantId: 'DemoMerchant', apiKeyId: 'demo-api-key', apiSecret: 'demo-api-secret' };

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return;
    await sleep(200);
  }
  throw new Error(`timed out waiting for ${what}`);
}

const children: ChildProcess[] = [];
function start(command: string, args: string[], env: NodeJS.ProcessEnv): ChildProcess {
  const child = spawn(command, args, {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  children.push(child);
  return child;
}

async function stopAll() {
  for (const child of children.reverse()) {
    if (child.exitCode !== null) continue;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    await Promise.race([exited, sleep(8_000).then(() => child.kill('SIGKILL'))]);
  }
}

/** A webhook envelope carrying the payment as the simulator holds it, with the given status. */
function paymentEvent(
  payment: SimulatedPayment,
  eventId: string,
  code: number,
  status: string,
  category: string,
  second: number,
) {
  const { Operations: _operations, ...body } = payment;
  return {
    apiVersion: 'v1',
    id: eventId,
    created: new Date().toISOString(),
    merchantId: CREDENTIALS.merchantId,
    type: `payment.${status.toLowerCase()}`,
    payment: {
      ...body,
      status,
      statusOutput: {
        ...body.statusOutput,
        statusCode: code,
        statusCategory: category,
        statusCodeChangeDateTime: `20261127${String(100000 + second)}`,
      },
    },
  };
}

async function main() {
  if (spawnSync('bash', ['scripts/ensure-redis.sh'], { cwd: ROOT, stdio: 'inherit' }).status !== 0)
    process.exit(1);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paystate-demo-'));
  const [redisPort, webPort, schedulerPort] = [await freePort(), await freePort(), await freePort()];
  start('redis-server', redisServerArgs({ port: redisPort, dir }), {});
  await waitForPort(redisPort, 5_000);
  const simulator: PlatformSimulator = await startPlatformSimulator(CREDENTIALS);
  const env = {
    PORT: String(webPort),
    SCHEDULER_PORT: String(schedulerPort),
    REDIS_URL: `redis://127.0.0.1:${redisPort}`,
    LEDGER_PATH: path.join(dir, 'ledger.db'),
    WEBHOOK_KEYS: `${WEBHOOK_KEY.keyId}:${WEBHOOK_KEY.secret}`,
    API_TOKENS: API_TOKEN,
    PLATFORM_URL: simulator.url,
    PLATFORM_MERCHANT_ID: CREDENTIALS.merchantId,
    PLATFORM_API_KEY_ID: CREDENTIALS.apiKeyId,
    PLATFORM_API_SECRET: CREDENTIALS.apiSecret,
    RECONCILE_EVERY: '1s',
    LOG_LEVEL: 'error',
  };
  try {
    for (const entry of ['src/http/server.ts', 'workers/status-worker.ts', 'workers/scheduler.ts']) {
      start(process.execPath, ['--import', 'tsx', entry], env);
    }
    const api = `http://127.0.0.1:${webPort}`;
    const auth = { authorization: `Bearer ${API_TOKEN}`, 'content-type': 'application/json' };
    await waitFor('the web process', async () => (await fetch(`${api}/readyz`)).ok);
    await waitFor('the scheduler', async () => (await fetch(`http://127.0.0.1:${schedulerPort}/readyz`)).ok);
    console.log(`paystate demo: web ${api}, simulator ${simulator.url}, ledger ${env.LEDGER_PATH}\n`);

    const register = (paymentId: string, amount: number, dueInMs: number) =>
      fetch(`${api}/v1/payments`, {
        method: 'POST',
        headers: auth,
        body: JSON.stringify({
          paymentId,
          merchantReference: `order-${paymentId.split('_')[0]}`,
          amount,
          currency: 'EUR',
          fulfilmentDueAt: new Date(Date.now() + dueInMs).toISOString(),
        }),
      });
    const send = (event: unknown, options: { duplicate?: boolean; delayMs?: number } = {}) =>
      simulator.sendWebhook(`${api}/webhooks`, event, {
        ...WEBHOOK_KEY,
        retry: { attempts: 3, delayMs: 500 },
        ...options,
      });

    const scenarios: Record<string, string> = {};
    // 1. captured, webhooks in order.
    const captured = simulator.createPayment({ paymentId: '7000000001_0', amount: 1500 });
    scenarios[captured.id] = 'captured';
    await register(captured.id, 1500, 3_600_000);
    await send(paymentEvent(captured, 'demo-1a', 5, 'PENDING_CAPTURE', 'PENDING_MERCHANT', 1));
    await send(paymentEvent(captured, 'demo-1b', 9, 'CAPTURED', 'COMPLETED', 2));
    // 2. refused by the issuer (test amount 1302).
    const refused = simulator.createPayment({ paymentId: '7000000002_0', amount: 1302 });
    scenarios[refused.id] = 'refused';
    await register(refused.id, 1302, 3_600_000);
    await send(paymentEvent(refused, 'demo-2a', 2, 'REJECTED', 'UNSUCCESSFUL', 1));
    // 3. webhooks out of order and twice.
    const shuffled = simulator.createPayment({ paymentId: '7000000003_0', amount: 2500 });
    scenarios[shuffled.id] = 'out of order, twice';
    await register(shuffled.id, 2500, 3_600_000);
    await Promise.all([
      send(paymentEvent(shuffled, 'demo-3c', 9, 'CAPTURED', 'COMPLETED', 3), { duplicate: true }),
      send(paymentEvent(shuffled, 'demo-3a', 5, 'PENDING_CAPTURE', 'PENDING_MERCHANT', 1), { delayMs: 300 }),
      send(paymentEvent(shuffled, 'demo-3b', 91, 'CAPTURE_REQUESTED', 'PENDING_CONNECT_OR_3RD_PARTY', 2), {
        delayMs: 150,
        duplicate: true,
      }),
    ]);
    // 4. the webhook never comes: the reconciler asks the platform before the goods are due.
    const silent = simulator.createPayment({ paymentId: '7000000004_0', amount: 990 });
    scenarios[silent.id] = 'webhook lost, found by poll';
    await register(silent.id, 990, 62_000);
    // 5. refunded after the goods were released.
    const returned = simulator.createPayment({ paymentId: '7000000005_0', amount: 4200 });
    scenarios[returned.id] = 'refunded after release';
    await register(returned.id, 4200, 3_600_000);
    await send(paymentEvent(returned, 'demo-5a', 9, 'CAPTURED', 'COMPLETED', 1));
    await waitFor('the capture of 7000000005_0', async () => {
      const res = await fetch(`${api}/v1/payments/${returned.id}`, { headers: auth });
      return ((await res.json()) as { stage: string }).stage === 'captured';
    });
    await fetch(`${api}/v1/payments/${returned.id}/release`, { method: 'POST', headers: auth });
    const refundedNow = simulator.refundPayment(returned.id);
    await send(paymentEvent(refundedNow, 'demo-5b', 8, 'REFUNDED', 'REFUNDED', 5));

    const views = async () =>
      Promise.all(
        Object.keys(scenarios).map(async (id) => {
          const res = await fetch(`${api}/v1/payments/${id}`, { headers: auth });
          return (await res.json()) as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
        }),
      );
    await waitFor(
      'every scenario to settle',
      async () => {
        const all = await views();
        return all.every((p) => ['captured', 'rejected', 'refunded'].includes(p.stage));
      },
      60_000,
    );

    console.table(
      (await views()).map((p) => ({
        payment: p.paymentId,
        scenario: scenarios[p.paymentId],
        stage: p.stage,
        statusCode: p.statusCode,
        releasable: p.fulfilment.releasable,
        reason:
          p.fulfilment.reason + (p.fulfilment.declineCategory ? ` (${p.fulfilment.declineCategory})` : ''),
        reversedAfterRelease: p.fulfilment.reversedAfterRelease,
        events: p.eventCount,
        lastSource: p.lastSource,
      })),
    );
  } finally {
    await stopAll();
    await simulator.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch(async (error: Error) => {
  console.error(`demo failed: ${error.message}`);
  await stopAll();
  process.exit(1);
});

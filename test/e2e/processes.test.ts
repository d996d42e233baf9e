import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { createRedisConnection, createStatusEventsQueue } from '../../src/queue';
import { deliver, paymentEvent } from '../helpers/deliveries';
import { newLedgerLocation, type TestLedgerLocation } from '../helpers/ledger';
import { freePort, RedisServer } from '../helpers/redis-server';
import { waitFor } from '../helpers/wait-for';

const ROOT = path.join(__dirname, '../..');

interface Running {
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
}

/** Runs a Procfile entry point from source, as its own process. */
function run(entry: string, env: Record<string, string>): Running {
  const child = spawn(process.execPath, ['--import', 'tsx', entry], {
    cwd: ROOT,
    env: { ...process.env, LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (chunk) => (output += chunk));
  child.stderr!.on('data', (chunk) => (output += chunk));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, output: () => output, exited };
}

let dir: string;
/** The ledger the processes share (LEDGER_PATH or LEDGER_URL), on the backend under test. */
let where: TestLedgerLocation;
const running: Running[] = [];

/**
 * Empties the status-events queue on the shared Redis. Completed jobs are kept there (jobId = event id), so the
 * same delivery made by this file's run in the other jest project would otherwise be taken as a duplicate.
 */
async function emptyStatusQueue(): Promise<void> {
  const redis = createRedisConnection(process.env.TEST_REDIS_URL!, { role: 'producer' });
  const queue = createStatusEventsQueue(redis);
  try {
    await queue.obliterate({ force: true });
  } finally {
    await queue.close();
    redis.disconnect();
  }
}

beforeEach(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paystate-e2e-'));
  where = await newLedgerLocation(dir);
  await emptyStatusQueue();
});

afterEach(async () => {
  for (const process of running.splice(0)) {
    if (process.child.exitCode === null) process.child.kill('SIGKILL');
    await process.exited;
  }
  await where.drop();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('the Procfile processes', () => {
  it('web and worker take a signed delivery to the ledger, then stop cleanly on SIGTERM', async () => {
    const port = await freePort();
    const env = {
      PORT: String(port),
      REDIS_URL: process.env.TEST_REDIS_URL!,
      ...where.env,
      WEBHOOK_KEYS: 'key-new:new:secret==',
      API_TOKENS: 'e2e-token',
      SHUTDOWN_TIMEOUT: '5s',
    };
    const web = run('src/http/server.ts', env);
    const worker = run('workers/status-worker.ts', env);
    running.push(web, worker);
    const url = `http://127.0.0.1:${port}`;
    await waitFor(async () => (await fetch(`${url}/readyz`).catch(() => undefined))?.status === 200, 20_000);

    const res = await deliver(
      url,
      JSON.stringify(paymentEvent({ eventId: 'e2e-1', paymentId: '6100000001_0', statusCode: 9 })),
    );
    expect(res.status).toBe(200);
    await waitFor(async () => {
      const answer = await fetch(`${url}/v1/payments/6100000001_0`, {
        headers: { authorization: 'Bearer e2e-token' },
      });
      return answer.status === 200 && ((await answer.json()) as { stage: string }).stage === 'captured';
    }, 20_000);

    // A follower caught up and long-polling for 30 s, longer than SHUTDOWN_TIMEOUT: the stop answers it.
    const feed = (after: string) =>
      fetch(`${url}/v1/changes?after=${after}&wait=30`, { headers: { authorization: 'Bearer e2e-token' } });
    const { next } = (await (await feed('0')).json()) as { next: string };
    const waiting = feed(next);
    await new Promise((resolve) => setTimeout(resolve, 300));

    web.child.kill('SIGTERM');
    worker.child.kill('SIGTERM');
    const answer = await waiting;
    expect([answer.status, await answer.json()]).toEqual([200, { changes: [], next }]);
    expect(await web.exited).toBe(0);
    expect(await worker.exited).toBe(0);
    expect(web.output()).toMatch(/shut down cleanly/);
    expect(worker.output()).toMatch(/shut down cleanly/);
  }, 60_000);

  it('refuses to start web in production on a Redis that may evict jobs', async () => {
    const redis = await RedisServer.start();
    const admin = new Redis(redis.url);
    try {
      await admin.config('SET', 'maxmemory-policy', 'allkeys-lru');
      const web = run('src/http/server.ts', {
        NODE_ENV: 'production',
        PORT: String(await freePort()),
        REDIS_URL: redis.url,
        ...where.env,
        WEBHOOK_KEYS: 'k:s',
        API_TOKENS: 't',
        PLATFORM_MERCHANT_ID: 'm',
        PLATFORM_API_KEY_ID: 'k',
        PLATFORM_API_SECRET: 's',
        ADMIN_TOKEN: 'admin',
      });
      running.push(web);
      expect(await web.exited).toBe(1);
      expect(web.output()).toMatch(/maxmemory-policy is allkeys-lru/);
    } finally {
      admin.disconnect();
      await redis.stop();
    }
  }, 60_000);

  it('lists every bad setting at once and exits 1', async () => {
    const web = run('src/http/server.ts', {
      PORT: 'eighty',
      WEBHOOK_MAX_BODY: 'huge',
      REDIS_URL: 'http://nope',
    });
    running.push(web);
    expect(await web.exited).toBe(1);
    for (const name of ['PORT', 'WEBHOOK_MAX_BODY', 'REDIS_URL']) expect(web.output()).toContain(name);
  }, 30_000);
});

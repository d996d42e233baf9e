import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { deliver, paymentEvent } from '../helpers/deliveries';
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
const running: Running[] = [];

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paystate-e2e-'));
});

afterEach(async () => {
  for (const process of running.splice(0)) {
    if (process.child.exitCode === null) process.child.kill('SIGKILL');
    await process.exited;
  }
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('the Procfile processes', () => {
  it('web and worker take a signed delivery to the ledger, then stop cleanly on SIGTERM', async () => {
    const port = await freePort();
    const env = {
      PORT: String(port),
      REDIS_URL: process.env.TEST_REDIS_URL!,
      LEDGER_PATH: path.join(dir, 'ledger.db'),
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

    web.child.kill('SIGTERM');
    worker.child.kill('SIGTERM');
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
        LEDGER_PATH: path.join(dir, 'ledger.db'),
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

import fs from 'node:fs';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { Server } from 'node:http';
import type { JobsOptions, Queue } from 'bullmq';
import { createApp, type AppOptions } from '../../src/http/app';
import { answerClientErrorsWithJson } from '../../src/http/client-errors';
import { openSqliteLedger, type Ledger } from '../../src/ledger';
import { createLogger } from '../../src/log';
import { parseKeyRing } from '../../src/platform';
import { createRedisConnection, createStatusEventsQueue, type StatusEventJob } from '../../src/queue';
import type { Redis } from 'ioredis';

export const KEY_RING_SPEC = 'key-old:old+secret/=,key-new:new:secret==';
export const API_TOKEN = 'test-token-1';

export interface BuiltWeb {
  url: string;
  queue: Queue<StatusEventJob>;
  ledger: Ledger;
  redis: Redis;
  dir: string;
  close(): Promise<void>;
}

/** A real web process in-memory: real HTTP on a free port, real Redis, a fresh migrated SQLite file. */
export async function buildWeb(
  overrides: Partial<AppOptions> & { redisUrl?: string; jobOptions?: JobsOptions } = {},
): Promise<BuiltWeb> {
  const { redisUrl: _redisUrl, jobOptions: _jobOptions, ...appOverrides } = overrides;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paystate-web-'));
  const redis = createRedisConnection(overrides.redisUrl ?? process.env.TEST_REDIS_URL!, {
    role: 'producer',
  });
  redis.on('error', () => undefined);
  const queue = createStatusEventsQueue(redis, overrides.jobOptions);
  queue.on('error', () => undefined);
  await queue.obliterate({ force: true }).catch(() => undefined);
  const ledger = openSqliteLedger({ path: path.join(dir, 'ledger.db') });
  const log = createLogger({ level: 'error', json: true });
  log.silent = true;
  const app = createApp({
    keyRing: parseKeyRing(KEY_RING_SPEC),
    maxBodyBytes: 64 * 1024,
    enqueueTimeoutMs: 2_000,
    failureLimit: 5,
    failureWindowMs: 60_000,
    apiTokens: [API_TOKEN, 'test-token-2'],
    releaseOn: 'captured',
    defaultFulfilmentDelayMs: 15 * 60_000,
    queue,
    adminQueues: [],
    adminToken: undefined,
    ledger,
    readiness: { redis: async () => void (await redis.ping()), ledger: () => ledger.ping() },
    log,
    ...appOverrides,
  });
  const server: Server = await new Promise((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
    answerClientErrorsWithJson(s);
  });
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    queue,
    ledger,
    redis,
    dir,
    close: async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      await queue.obliterate({ force: true }).catch(() => undefined);
      await queue.close();
      redis.disconnect();
      await ledger.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

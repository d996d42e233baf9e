import http from 'node:http';
import fs from 'node:fs';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { Server } from 'node:http';
import type { JobsOptions, Queue } from 'bullmq';
import { createApp, type AppOptions } from '../../src/http/app';
import { answerClientErrorsWithJson } from '../../src/http/client-errors';
import { openLedger, type Ledger } from '../../src/ledger';
import { createLogger } from '../../src/log';
import { parseKeyRing } from '../../src/platform';
import { createRedisConnection, createStatusEventsQueue, type StatusEventJob } from '../../src/queue';
import type { Redis } from 'ioredis';
import { newLedgerLocation, type TestLedgerLocation } from './ledger';

export const KEY_RING_SPEC = 'key-old:old+secret/=,key-new:new:secret==';
export const API_TOKEN = 'test-token-1';

export interface BuiltWeb {
  url: string;
  queue: Queue<StatusEventJob>;
  ledger: Ledger;
  redis: Redis;
  dir: string;
  /** Where the ledger is, for another handle on it or a child process's environment; none for a given ledger. */
  location: TestLedgerLocation | undefined;
  close(): Promise<void>;
}

/**
 * A real web process in-memory: real HTTP on a free port, real Redis, a fresh migrated ledger on the backend
 * under test (or at `location`, which the caller then drops). A `ledger` given in the overrides is used as it is,
 * and left open at close.
 */
export async function buildWeb(
  overrides: Partial<AppOptions> & {
    redisUrl?: string;
    jobOptions?: JobsOptions;
    location?: TestLedgerLocation;
  } = {},
): Promise<BuiltWeb> {
  const { redisUrl: _redisUrl, jobOptions: _jobOptions, location: given, ...appOverrides } = overrides;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paystate-web-'));
  const ownsLedger = !overrides.ledger;
  const location = ownsLedger ? (given ?? (await newLedgerLocation(dir))) : undefined;
  // As src/http/server.ts opens it.
  const ledger = overrides.ledger ?? (await openLedger(location!.location, { countsOffThread: true }));
  const redis = createRedisConnection(overrides.redisUrl ?? process.env.TEST_REDIS_URL!, {
    role: 'producer',
  });
  redis.on('error', () => undefined);
  const queue = createStatusEventsQueue(redis, overrides.jobOptions);
  queue.on('error', () => undefined);
  await queue.obliterate({ force: true }).catch(() => undefined);
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
    const s = http.createServer(app).listen(0, '127.0.0.1', () => resolve(s));
    answerClientErrorsWithJson(s);
  });
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  let closing: Promise<void> | undefined;
  const close = async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
    await queue.obliterate({ force: true }).catch(() => undefined);
    await queue.close();
    redis.disconnect();
    if (ownsLedger) await ledger.close();
    if (location && !given) await location.drop();
    fs.rmSync(dir, { recursive: true, force: true });
  };
  return {
    url,
    queue,
    ledger,
    redis,
    dir,
    location,
    // Tests close in their own finally and again in afterEach: the second call waits for the first.
    close: () => (closing ??= close()),
  };
}

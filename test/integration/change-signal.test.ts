import type { Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import { announcingWrites } from '../../src/ledger';
import { createLogger } from '../../src/log';
import {
  createChangeAnnouncer,
  createRedisConnection,
  createStatusWorker,
  subscribeToChanges,
  type ChangeSignal,
} from '../../src/queue';
import { API_TOKEN, buildWeb, type BuiltWeb } from '../helpers/build-web';
import { deliver, paymentEvent } from '../helpers/deliveries';

const log = createLogger({ level: 'error', json: true });
log.silent = true;

let web: BuiltWeb;
let signal: ChangeSignal;
let connection: Redis | undefined;
let worker: Worker | undefined;

/** A web process whose long-polls re-read the ledger only every minute: only an announcement wakes them sooner. */
async function startWeb(changePollIntervalMs: number) {
  signal = subscribeToChanges(
    createRedisConnection(process.env.TEST_REDIS_URL!, { role: 'worker' }),
    () => {},
  );
  web = await buildWeb({ changeSignal: signal, changePollIntervalMs });
}

afterEach(async () => {
  await worker?.close();
  connection?.disconnect();
  worker = connection = undefined;
  if (!signal.closed) await signal.close();
  await web.close();
});

async function changesAfter(cursor: string, waitSeconds: number) {
  const res = await fetch(`${web.url}/v1/changes?after=${cursor}&wait=${waitSeconds}`, {
    headers: { authorization: `Bearer ${API_TOKEN}` },
  });
  return (await res.json()) as { changes: Array<{ paymentId: string; toStage: string }>; next: string };
}

it('wakes a long-poll when the worker announces its commit, without waiting for the next read', async () => {
  await startWeb(60_000);
  connection = createRedisConnection(process.env.TEST_REDIS_URL!, { role: 'worker' });
  const announced = announcingWrites(web.ledger, createChangeAnnouncer(connection));
  worker = createStatusWorker({ connection, ledger: announced, log, concurrency: 2 });
  const start = await changesAfter('0', 0);
  // Long enough to outlast the jest timeout: only the announcement can answer it in time.
  const polling = changesAfter(start.next, 30);
  await new Promise((resolve) => setTimeout(resolve, 200));
  const body = JSON.stringify(paymentEvent({ eventId: 'sig-1', statusCode: 9, paymentId: '7000000001_0' }));
  expect((await deliver(web.url, body)).status).toBe(200);
  const { changes } = await polling;
  expect(changes.map((change) => [change.paymentId, change.toStage])).toEqual([['7000000001_0', 'captured']]);
});

it('still answers a write nobody announced (the CLI, Redis restarting) at the next read of the ledger', async () => {
  await startWeb(100);
  const start = await changesAfter('0', 0);
  const polling = changesAfter(start.next, 30);
  await new Promise((resolve) => setTimeout(resolve, 200));
  await web.ledger.registerPayment({
    paymentId: '7000000002_0',
    merchantReference: 'order-sig-2',
    amount: 1500,
    currency: 'EUR',
    fulfilmentDueAt: Date.now() + 3_600_000,
    fulfilmentDueAtGiven: true,
  });
  const { changes } = await polling;
  expect(changes.map((change) => change.paymentId)).toEqual(['7000000002_0']);
});

it('answers waiting long-polls at once when the web process stops, with the cursor unchanged', async () => {
  await startWeb(60_000);
  const start = await changesAfter('0', 0);
  const polling = changesAfter(start.next, 30);
  await new Promise((resolve) => setTimeout(resolve, 200));
  await signal.close();
  // Only closing can answer before the jest timeout: nothing was written and the re-read is a minute away.
  expect(await polling).toEqual({ changes: [], next: start.next });
  // A long-poll arriving while the process stops does not wait either.
  expect(await changesAfter(start.next, 30)).toEqual({ changes: [], next: start.next });
});

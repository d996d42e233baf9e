import type { Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import { openPgLedger, type Ledger } from '../../src/ledger';
import { startPostgres, type LocalPostgres } from '../../src/local';
import { createLogger } from '../../src/log';
import { createRedisConnection, createStatusWorker } from '../../src/queue';
import { API_TOKEN, buildWeb, type BuiltWeb } from '../helpers/build-web';
import { deliver, paymentEvent } from '../helpers/deliveries';
import { waitFor } from '../helpers/wait-for';

/**
 * The PostgreSQL ledger goes away under a running web and worker (a private server, killed like a crash): the
 * API answers 503 naming the ledger, /readyz fails, the worker pauses with its job kept, and everything resumes
 * by itself when the server is back.
 */
const log = createLogger({ level: 'error', json: true });
log.silent = true;

let postgres: LocalPostgres;
let ledger: Ledger;
let web: BuiltWeb;
let worker: Worker;
let connection: Redis;

beforeAll(async () => {
  postgres = await startPostgres({ fsync: false });
  ledger = await openPgLedger({ url: postgres.url, poolSize: 4, statementTimeoutMs: 2_000 });
  web = await buildWeb({
    ledger,
    readiness: { ledger: () => ledger.ping() },
  });
  connection = createRedisConnection(process.env.TEST_REDIS_URL!, { role: 'worker' });
  worker = createStatusWorker({ connection, ledger, log, concurrency: 2 });
}, 30_000);

afterAll(async () => {
  await worker?.close();
  connection?.disconnect();
  await web?.close();
  await ledger?.close();
  await postgres?.stop();
});

const api = async (path: string) => {
  const res = await fetch(`${web.url}${path}`, { headers: { authorization: `Bearer ${API_TOKEN}` } });
  return { status: res.status, retryAfter: res.headers.get('retry-after'), json: await res.json() };
};

it('answers 503 while the ledger is down, keeps the queued event, and resumes when it is back', async () => {
  const paymentId = '4000000001_0';
  const first = paymentEvent({ eventId: 'evt-up', paymentId, statusCode: 5, changeTime: '20261127100000' });
  expect((await deliver(web.url, JSON.stringify(first))).status).toBe(200);
  await waitFor(async () => (await api(`/v1/payments/${paymentId}`)).status === 200);

  await postgres.kill();

  const down = await api(`/v1/payments/${paymentId}`);
  expect(down.status).toBe(503);
  expect(down.json).toMatchObject({ error: 'ledger_unavailable' });
  expect(down.retryAfter).toBe('5');
  const ready = await api('/readyz');
  expect(ready.status).toBe(503);
  expect(ready.json.checks.ledger).toMatch(/^failing/);

  // Accepted while the ledger is down: the receiver needs only Redis.
  const second = paymentEvent({
    eventId: 'evt-down',
    paymentId,
    statusCode: 9,
    changeTime: '20261127100500',
  });
  expect((await deliver(web.url, JSON.stringify(second))).status).toBe(200);
  await waitFor(async () => (await web.queue.getDelayedCount()) + (await web.queue.getWaitingCount()) >= 1);
  expect(await worker.isPaused()).toBe(true);
  expect(await web.queue.getFailedCount()).toBe(0);

  await postgres.restart();

  await waitFor(async () => (await api(`/v1/payments/${paymentId}`)).json.statusCode === 9, 15_000);
  expect((await api('/readyz')).status).toBe(200);
  expect(await worker.isPaused()).toBe(false);
  expect(await web.queue.getFailedCount()).toBe(0);
  const events = await ledger.listPaymentEvents(paymentId);
  expect(events.map((event) => [event.eventId, event.outcome])).toEqual([
    ['evt-up', 'applied'],
    ['evt-down', 'applied'],
  ]);
}, 40_000);

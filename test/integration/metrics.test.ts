import { Queue, type Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import { createLogger } from '../../src/log';
import { createRedisConnection, createStatusWorker } from '../../src/queue';
import { API_TOKEN, buildWeb, type BuiltWeb } from '../helpers/build-web';
import { deliver, paymentEvent } from '../helpers/deliveries';
import { RedisServer } from '../helpers/redis-server';
import { waitFor } from '../helpers/wait-for';

const log = createLogger({ level: 'error', json: true });
log.silent = true;

let web: BuiltWeb;
let worker: Worker | undefined;
let connection: Redis | undefined;
let polls: Queue | undefined;

afterEach(async () => {
  await worker?.close();
  worker = undefined;
  await web?.close();
  const queue = polls;
  polls = undefined;
  if (queue) {
    await queue.obliterate({ force: true });
    await queue.close();
  }
  connection?.disconnect();
  connection = undefined;
});

const TEST_HEADER = { 'x-paystate-test': '1' };
const eventBody = (eventId: string, extra: Parameters<typeof paymentEvent>[0] = { eventId }) =>
  JSON.stringify(paymentEvent({ ...extra, eventId }));

async function scrape(): Promise<string> {
  const res = await fetch(`${web.url}/metrics`);
  expect(res.status).toBe(200);
  return res.text();
}

/** The value of one series, or undefined when the scrape does not have it. */
function sample(metrics: string, series: string): number | undefined {
  const line = metrics.split('\n').find((each) => each.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe('webhook delivery counters', () => {
  beforeEach(async () => {
    web = await buildWeb({ failureLimit: 2 });
  });

  it('counts an accepted delivery and its events', async () => {
    const body = JSON.stringify([paymentEvent({ eventId: 'm-a1' }), paymentEvent({ eventId: 'm-a2' })]);
    expect((await deliver(web.url, body)).status).toBe(200);
    const metrics = await scrape();
    expect(sample(metrics, 'paystate_webhooks_received_total')).toBe(1);
    expect(sample(metrics, 'paystate_webhooks_received_events_total')).toBe(2);
  });

  it('counts refusals by the code answered', async () => {
    expect((await deliver(web.url, '{"apiVersion":"v2","id":"m-v2"}')).status).toBe(400);
    expect((await deliver(web.url, Buffer.alloc(65 * 1024, 'a'))).status).toBe(413);
    // Two failed verifications reach the limit of 2: the next delivery from this address is throttled.
    expect((await deliver(web.url, eventBody('m-r1'), { signature: 'bad' })).status).toBe(401);
    expect((await deliver(web.url, eventBody('m-r2'), { signature: 'bad' })).status).toBe(401);
    expect((await deliver(web.url, eventBody('m-r3'))).status).toBe(429);
    const metrics = await scrape();
    expect(sample(metrics, 'paystate_webhooks_rejected_total{reason="invalid_signature"}')).toBe(2);
    expect(sample(metrics, 'paystate_webhooks_rejected_total{reason="unsupported_api_version"}')).toBe(1);
    expect(sample(metrics, 'paystate_webhooks_rejected_total{reason="payload_too_large"}')).toBe(1);
    expect(sample(metrics, 'paystate_webhooks_rejected_total{reason="too_many_failed_verifications"}')).toBe(
      1,
    );
    expect(sample(metrics, 'paystate_webhooks_received_total')).toBe(0);
  });

  it('leaves test deliveries out of the received and rejected counters, but processes them', async () => {
    expect((await deliver(web.url, eventBody('m-t1'), { headers: TEST_HEADER })).status).toBe(200);
    expect(
      (await deliver(web.url, eventBody('m-t2'), { headers: TEST_HEADER, signature: 'tampered' })).status,
    ).toBe(401);
    expect(await web.queue.getJob('m-t1')).toBeDefined();
    const metrics = await scrape();
    expect(sample(metrics, 'paystate_webhooks_received_total')).toBe(0);
    expect(sample(metrics, 'paystate_webhooks_received_events_total')).toBe(0);
    expect(metrics).not.toMatch(/^paystate_webhooks_rejected_total\{/m);
    expect(sample(metrics, 'paystate_webhooks_test_deliveries_total{result="accepted"}')).toBe(1);
    expect(sample(metrics, 'paystate_webhooks_test_deliveries_total{result="invalid_signature"}')).toBe(1);
  });
});

describe('figures read at scrape time', () => {
  it('reports queue depth by state and the age of the oldest waiting job, for every queue given', async () => {
    connection = createRedisConnection(process.env.TEST_REDIS_URL!, { role: 'producer' });
    polls = new Queue(`payment-polls-metrics-${process.pid}`, { connection });
    await polls.add('poll', { paymentId: 'p1', attempt: 1 }, { timestamp: Date.now() - 90_000 });
    await polls.add('poll', { paymentId: 'p2', attempt: 1 });
    web = await buildWeb({ adminQueues: [polls] });
    expect((await deliver(web.url, eventBody('m-q1'))).status).toBe(200);

    const metrics = await scrape();
    expect(sample(metrics, 'paystate_queue_jobs{queue="status-events",state="waiting"}')).toBe(1);
    for (const state of ['active', 'failed', 'delayed'])
      expect(sample(metrics, `paystate_queue_jobs{queue="status-events",state="${state}"}`)).toBe(0);
    expect(sample(metrics, `paystate_queue_jobs{queue="${polls.name}",state="waiting"}`)).toBe(2);
    const oldest = sample(metrics, `paystate_queue_oldest_waiting_seconds{queue="${polls.name}"}`)!;
    expect(oldest).toBeGreaterThanOrEqual(90);
    expect(oldest).toBeLessThan(120);
    expect(sample(metrics, 'paystate_queue_oldest_waiting_seconds{queue="status-events"}')).toBeLessThan(60);
  });

  it('reports ledger duplicates, stale payments, drifts and due checks, and event-loop lag', async () => {
    web = await buildWeb();
    // Registered with goods due an hour ago: its reconciliation check is due now.
    const registered = await fetch(`${web.url}/v1/payments`, {
      method: 'POST',
      headers: { authorization: `Bearer ${API_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        paymentId: '8100000001_0',
        merchantReference: 'order-m',
        amount: 1500,
        currency: 'EUR',
        fulfilmentDueAt: new Date(Date.now() - 3_600_000).toISOString(),
      }),
    });
    expect(registered.status).toBe(201);
    // The platform re-sends the same status under a new envelope id: only the ledger sees the duplicate.
    const same = { paymentId: '8200000001_0', statusCode: 5, changeTime: '20261127100000' };
    expect((await deliver(web.url, eventBody('m-d1', { eventId: 'm-d1', ...same }))).status).toBe(200);
    expect((await deliver(web.url, eventBody('m-d2', { eventId: 'm-d2', ...same }))).status).toBe(200);
    connection = createRedisConnection(process.env.TEST_REDIS_URL!, { role: 'worker' });
    worker = createStatusWorker({ connection, ledger: web.ledger, log, concurrency: 1 });
    await waitFor(async () => (await web.ledger.counts()).eventsByOutcome.duplicate === 1);

    const metrics = await scrape();
    expect(sample(metrics, 'paystate_ledger_events{outcome="duplicate"}')).toBe(1);
    expect(sample(metrics, 'paystate_ledger_events{outcome="applied"}')).toBe(1);
    expect(sample(metrics, 'paystate_checks_due')).toBe(1);
    expect(sample(metrics, 'paystate_payments_stale')).toBe(0);
    expect(sample(metrics, 'paystate_drifts')).toBe(0);
    expect(sample(metrics, 'paystate_reversed_after_release')).toBe(0);
    expect(metrics).toMatch(/^# HELP paystate_ledger_events .*receiver cannot see them/m);
    expect(sample(metrics, 'paystate_nodejs_eventloop_lag_seconds')).toBeGreaterThanOrEqual(0);
  });

  it('still answers with the ledger figures while Redis is down, leaving the queue series out', async () => {
    const redis = await RedisServer.start();
    try {
      web = await buildWeb({ redisUrl: redis.url });
      await redis.stopProcess();
      expect((await deliver(web.url, eventBody('m-down'))).status).toBe(503);
      const metrics = await scrape();
      expect(metrics).not.toMatch(/^paystate_queue_jobs\{/m);
      expect(sample(metrics, 'paystate_webhooks_rejected_total{reason="queue_unavailable"}')).toBe(1);
      expect(sample(metrics, 'paystate_checks_due')).toBe(0);
    } finally {
      await web.close();
      await redis.stop();
    }
  });
});

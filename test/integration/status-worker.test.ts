import type { Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import { openLedger, type Ledger } from '../../src/ledger';
import { createLogger } from '../../src/log';
import { createRedisConnection, createStatusWorker } from '../../src/queue';
import { API_TOKEN, buildWeb, type BuiltWeb } from '../helpers/build-web';
import { deliver, paymentEvent } from '../helpers/deliveries';
import { lockLedgerWrites, openImpatientLedger, TEST_BACKEND } from '../helpers/ledger';
import { waitFor } from '../helpers/wait-for';

const log = createLogger({ level: 'error', json: true });
log.silent = true;

let web: BuiltWeb;
const workers: { worker: Worker; connection: Redis }[] = [];

function startWorker(ledger: Ledger = web.ledger, concurrency = 4): Worker {
  const connection = createRedisConnection(process.env.TEST_REDIS_URL!, { role: 'worker' });
  const worker = createStatusWorker({ connection, ledger, log, concurrency });
  workers.push({ worker, connection });
  return worker;
}

async function closeWorkers(): Promise<void> {
  for (const { worker, connection } of workers.splice(0)) {
    await worker.close();
    connection.disconnect();
  }
}

afterEach(async () => {
  await closeWorkers();
  await web?.close();
});

const bodyOf = (event: unknown) => JSON.stringify(event);

/** One payment's life, in platform order, with the platform's change times. */
const lifecycle = [
  {
    eventId: 'l0',
    statusCode: 0,
    status: 'CREATED',
    statusCategory: 'CREATED',
    changeTime: '20261127100000',
  },
  {
    eventId: 'l1',
    statusCode: 5,
    status: 'PENDING_CAPTURE',
    statusCategory: 'PENDING_MERCHANT',
    changeTime: '20261127100100',
  },
  {
    eventId: 'l2',
    statusCode: 91,
    status: 'CAPTURE_REQUESTED',
    statusCategory: 'PENDING_CONNECT_OR_3RD_PARTY',
    changeTime: '20261127100200',
  },
  {
    eventId: 'l3',
    statusCode: 9,
    status: 'CAPTURED',
    statusCategory: 'COMPLETED',
    changeTime: '20261127100300',
  },
];

async function getPayment(id: string, token = API_TOKEN) {
  return fetch(`${web.url}/v1/payments/${id}`, { headers: { authorization: `Bearer ${token}` } });
}

describe('status worker', () => {
  it('applies deliveries posted out of order and twice to the same end state, visible at GET /v1/payments/:id', async () => {
    web = await buildWeb();
    startWorker();
    const shuffled = [lifecycle[3], lifecycle[0], lifecycle[2], lifecycle[3], lifecycle[1], lifecycle[0]];
    for (const step of shuffled)
      expect((await deliver(web.url, bodyOf(paymentEvent(step!)))).status).toBe(200);
    // A platform re-send of the capture under a new envelope id.
    await deliver(web.url, bodyOf(paymentEvent({ ...lifecycle[3]!, eventId: 'l3-resend' })));

    await waitFor(async () => (await web.ledger.listPaymentEvents('3254564310_0')).length === 5);
    const res = await getPayment('3254564310_0');
    expect(res.status).toBe(200);
    const payment = (await res.json()) as Record<string, unknown>;
    expect(payment).toMatchObject({ statusCode: 9, stage: 'captured', capturedTotal: 1500, eventCount: 5 });
    const outcomes = (await web.ledger.listPaymentEvents('3254564310_0')).map((e) => [e.eventId, e.outcome]);
    expect(outcomes).toEqual(
      expect.arrayContaining([
        ['l3', 'applied'],
        ['l0', 'superseded'],
        ['l3-resend', 'duplicate'],
      ]),
    );
  });

  it('runs more jobs at once while a backlog waits, and drops back once it has caught up', async () => {
    web = await buildWeb();
    const events = Array.from({ length: 150 }, (_, i) =>
      paymentEvent({ ...lifecycle[3]!, eventId: `backlog-${i}`, paymentId: `88${i}_0` }),
    );
    await web.queue.addBulk(
      events.map((event) => {
        const data = {
          eventId: event.id as string,
          type: event.type,
          keyId: 'key-new',
          signature: 'verified-by-the-receiver',
          rawBody: bodyOf(event),
          rawIndex: null,
          receivedAt: Date.now(),
        };
        return { name: data.type, data, opts: { jobId: data.eventId } };
      }),
    );
    let inFlight = 0;
    let mostInFlight = 0;
    const counting: Ledger = {
      ...web.ledger,
      apply: async (input) => {
        mostInFlight = Math.max(mostInFlight, ++inFlight);
        try {
          return await web.ledger.apply(input);
        } finally {
          inFlight--;
        }
      },
    };
    const connection = createRedisConnection(process.env.TEST_REDIS_URL!, { role: 'worker' });
    const worker = createStatusWorker({
      connection,
      ledger: counting,
      log,
      concurrency: 1,
      backlogConcurrency: 6,
      backlogThreshold: 40,
    });
    workers.push({ worker, connection });
    let completed = 0;
    worker.on('completed', () => completed++);
    await waitFor(() => completed === events.length, 15_000);
    expect(mostInFlight).toBe(6);
    await waitFor(() => worker.concurrency === 1);
    const released = await getPayment('881_0');
    expect(((await released.json()) as { stage: string }).stage).toBe('captured');
  });

  it('gives two workers on the same ledger the same result as one', async () => {
    web = await buildWeb();
    const second = await openLedger(web.location!.location);
    try {
      startWorker(web.ledger, 8);
      startWorker(second, 8);
      const deliveries = [];
      for (let p = 0; p < 20; p++) {
        for (const step of [...lifecycle].reverse()) {
          deliveries.push(
            bodyOf(paymentEvent({ ...step, eventId: `${step.eventId}-${p}`, paymentId: `77${p}_0` })),
          );
        }
      }
      for (const body of deliveries) expect((await deliver(web.url, body)).status).toBe(200);
      await waitFor(async () => (await web.queue.getJobCounts('completed')).completed === deliveries.length);
      for (let p = 0; p < 20; p++) {
        const payment = await web.ledger.getPayment(`77${p}_0`);
        expect(payment).toMatchObject({ statusCode: 9, stage: 'captured', eventCount: 4 });
      }
    } finally {
      await closeWorkers();
      await second.close();
    }
  });

  it('fails an invalid payload at once, naming the field, and keeps it in the failed set and the ledger', async () => {
    web = await buildWeb();
    const worker = startWorker();
    const event = paymentEvent({ eventId: 'bad-1' });
    (event.payment as { statusOutput: Record<string, unknown> }).statusOutput.statusCode = 'nine';
    expect((await deliver(web.url, bodyOf(event))).status).toBe(200);

    await waitFor(async () => (await web.queue.getJobState('bad-1')) === 'failed');
    const job = await web.queue.getJob('bad-1');
    expect(job?.attemptsMade).toBe(1);
    expect(job?.failedReason).toMatch(/payment\.statusOutput\.statusCode/);
    const stored = await web.ledger.getEvent('bad-1');
    expect(stored?.outcome).toBe('invalid');
    expect(stored?.reason).toMatch(/payment\.statusOutput\.statusCode/);
    expect(worker.isRunning()).toBe(true);
  });

  // The write lock is SQLite's database lock, or on PostgreSQL a table lock that stops every writer: the worker's
  // ledger gives up after a short wait (busy timeout / statement timeout) and the job fails that attempt.
  it('retries while the ledger is locked, then applies once the lock is gone', async () => {
    web = await buildWeb({ jobOptions: { attempts: 20, backoff: { type: 'fixed', delay: 50 } } });
    const impatient = await openImpatientLedger(web.location!.location);
    const unlock = await lockLedgerWrites(web.location!.location);
    let locked = true;
    try {
      startWorker(impatient);
      await deliver(
        web.url,
        bodyOf(paymentEvent({ eventId: 'locked-1', statusCode: 9, changeTime: '20261127100300' })),
      );
      await waitFor(async () => ((await web.queue.getJob('locked-1'))?.attemptsMade ?? 0) >= 2);
      await unlock();
      locked = false;
      await waitFor(async () => (await web.queue.getJobState('locked-1')) === 'completed');
      expect((await web.ledger.getEvent('locked-1'))?.outcome).toBe('applied');
    } finally {
      if (locked) await unlock();
      await closeWorkers();
      await impatient.close();
    }
  });

  it('records an event whose attempts are exhausted as failed in the ledger, with the last error', async () => {
    web = await buildWeb({ jobOptions: { attempts: 2, backoff: { type: 'fixed', delay: 20 } } });
    const impatient = await openImpatientLedger(web.location!.location);
    const unlock = await lockLedgerWrites(web.location!.location);
    let locked = true;
    try {
      startWorker(impatient);
      await deliver(web.url, bodyOf(paymentEvent({ eventId: 'doomed-1' })));
      await waitFor(async () => (await web.queue.getJobState('doomed-1')) === 'failed');
      await unlock();
      locked = false;
      await waitFor(async () => (await web.ledger.getEvent('doomed-1'))?.outcome === 'failed');
      const stored = await web.ledger.getEvent('doomed-1');
      expect(stored?.reason).toMatch(TEST_BACKEND === 'sqlite' ? /locked|busy/i : /statement timeout/i);
      expect(stored?.rawBody).toContain('doomed-1');
    } finally {
      if (locked) await unlock();
      await closeWorkers();
      await impatient.close();
    }
  });
});

describe('GET /v1/payments/:paymentId', () => {
  beforeEach(async () => {
    web = await buildWeb();
  });

  it('refuses a request without a bearer token with 401', async () => {
    const res = await fetch(`${web.url}/v1/payments/1_0`);
    expect(res.status).toBe(401);
    expect(((await res.json()) as { error: string }).error).toBe('missing_token');
  });

  it('refuses a wrong token with 403', async () => {
    const res = await getPayment('1_0', 'not-a-token');
    expect(res.status).toBe(403);
    expect(((await res.json()) as { error: string }).error).toBe('invalid_token');
  });

  it('accepts any of the configured tokens', async () => {
    expect((await getPayment('1_0', 'test-token-2')).status).toBe(404);
  });

  it('answers 404 JSON for an unknown payment', async () => {
    const res = await getPayment('404404_0');
    expect(res.status).toBe(404);
    expect(((await res.json()) as { error: string }).error).toBe('payment_not_found');
  });

  it('answers 400 for a malformed payment id', async () => {
    const res = await getPayment('x'.repeat(65));
    expect(res.status).toBe(400);
  });
});

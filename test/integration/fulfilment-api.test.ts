import type { Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import { createLogger } from '../../src/log';
import { createRedisConnection, createStatusWorker } from '../../src/queue';
import { API_TOKEN, buildWeb, type BuiltWeb } from '../helpers/build-web';
import { deliver, fixture, paymentEvent } from '../helpers/deliveries';
import { waitFor } from '../helpers/wait-for';

const log = createLogger({ level: 'error', json: true });
log.silent = true;

let web: BuiltWeb;
let worker: Worker | undefined;
let connection: Redis | undefined;

beforeEach(async () => {
  web = await buildWeb();
});

afterEach(async () => {
  await worker?.close();
  connection?.disconnect();
  worker = undefined;
  await web.close();
});

function startWorker() {
  connection = createRedisConnection(process.env.TEST_REDIS_URL!, { role: 'worker' });
  worker = createStatusWorker({ connection, ledger: web.ledger, log, concurrency: 4 });
}

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

async function api(method: string, path: string, body?: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(`${web.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${API_TOKEN}`, 'content-type': 'application/json', ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, json: (text ? JSON.parse(text) : null) as Json };
}

const registration = {
  paymentId: '3254564310_0',
  merchantReference: 'order-1001',
  amount: 1500,
  currency: 'EUR',
  fulfilmentDueAt: '2026-11-27T13:00:00.000Z',
};

const statusEvent = (eventId: string, statusCode: number, changeTime: string, extra: Json = {}) =>
  JSON.stringify({
    ...paymentEvent({ eventId, statusCode, changeTime, paymentId: registration.paymentId }),
    ...extra,
  });

describe('POST /v1/payments', () => {
  it('registers an expected payment, not releasable yet', async () => {
    const res = await api('POST', '/v1/payments', registration);
    expect(res.status).toBe(201);
    expect(res.json).toMatchObject({
      paymentId: '3254564310_0',
      stage: 'expected',
      fulfilment: { releasable: false, reason: 'awaiting_payment', dueAt: registration.fulfilmentDueAt },
    });
  });

  it('answers 200 with the current state for the same body again', async () => {
    await api('POST', '/v1/payments', registration);
    const again = await api('POST', '/v1/payments', registration);
    expect(again.status).toBe(200);
    expect(again.json.paymentId).toBe('3254564310_0');
  });

  it('defaults fulfilmentDueAt to now plus the configured delay, and stays idempotent without it', async () => {
    const { fulfilmentDueAt: _omit, ...withoutDue } = registration;
    const before = Date.now();
    const first = await api('POST', '/v1/payments', withoutDue);
    const due = Date.parse(first.json.fulfilment.dueAt);
    expect(due).toBeGreaterThanOrEqual(before + 15 * 60_000);
    expect(due).toBeLessThan(before + 16 * 60_000);
    expect((await api('POST', '/v1/payments', withoutDue)).status).toBe(200);
  });

  it('answers 409 naming the field for a conflicting body', async () => {
    await api('POST', '/v1/payments', registration);
    const res = await api('POST', '/v1/payments', { ...registration, amount: 999 });
    expect(res.status).toBe(409);
    expect(res.json).toMatchObject({ error: 'registration_conflict', conflicts: ['amount'] });
  });

  it.each([
    [{ ...registration, amount: 'ten' }, 'amount'],
    [{ ...registration, currency: 'euro' }, 'currency'],
    [{ ...registration, fulfilmentDueAt: 'tomorrow' }, 'fulfilmentDueAt'],
    [{ ...registration, paymentId: 'has space' }, 'paymentId'],
    [{ ...registration, merchantReference: 'order-\ud800' }, 'merchantReference'],
    [{ ...registration, surprise: true }, 'surprise'],
  ])('answers 400 naming the bad field (%#)', async (body, field) => {
    const res = await api('POST', '/v1/payments', body);
    expect(res.status).toBe(400);
    expect(res.json.error).toBe('invalid_request');
    expect(res.json.message).toContain(field);
  });

  it('answers 400 invalid_json for a body that is not JSON', async () => {
    const res = await fetch(`${web.url}/v1/payments`, {
      method: 'POST',
      headers: { authorization: `Bearer ${API_TOKEN}`, 'content-type': 'application/json' },
      body: '{"paymentId":',
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as Json).error).toBe('invalid_json');
  });
});

describe('release decisions', () => {
  it('records a payment a webhook created without registration', async () => {
    startWorker();
    await deliver(web.url, statusEvent('w1', 5, '20261127100100'));
    await waitFor(async () => (await api('GET', '/v1/payments/3254564310_0')).status === 200);
    const res = await api('GET', '/v1/payments/3254564310_0');
    expect(res.json).toMatchObject({
      stage: 'authorised',
      fulfilment: { releasable: false, reason: 'awaiting_capture' },
    });
  });

  it('refuses release with 409 and the reason while the payment is only authorised', async () => {
    startWorker();
    await api('POST', '/v1/payments', registration);
    await deliver(web.url, statusEvent('r1', 5, '20261127100100'));
    await waitFor(async () => (await api('GET', '/v1/payments/3254564310_0')).json.stage === 'authorised');
    const res = await api('POST', '/v1/payments/3254564310_0/release');
    expect(res.status).toBe(409);
    expect(res.json).toMatchObject({ error: 'not_releasable', fulfilment: { reason: 'awaiting_capture' } });
  });

  it('answers a refused payment with the platform error code and a decline category', async () => {
    startWorker();
    const rejected = JSON.parse(
      fixture('plugin-magento-core_stub_getpaymentdetails_rejected.json').toString(),
    );
    const event = paymentEvent({ eventId: 'declined-1', paymentId: 'decl_0' });
    event.payment = { ...rejected, id: 'decl_0' };
    await deliver(web.url, JSON.stringify(event));
    await waitFor(async () => (await api('GET', '/v1/payments/decl_0')).status === 200);
    const res = await api('GET', '/v1/payments/decl_0');
    expect(res.json.fulfilment).toMatchObject({
      releasable: false,
      reason: 'payment_refused',
      errorCode: '40001134',
      declineCategory: 'three_d_secure_failure',
    });
  });

  it('answers 404 for releasing an unknown payment', async () => {
    expect((await api('POST', '/v1/payments/nope_0/release')).status).toBe(404);
  });
});

describe('GET /v1/payments/:id caching', () => {
  it('answers an ETag and 304 for If-None-Match, and a new ETag after a change', async () => {
    await api('POST', '/v1/payments', registration);
    const first = await api('GET', '/v1/payments/3254564310_0');
    const etag = first.headers.get('etag')!;
    expect(etag).toBeTruthy();
    expect((await api('GET', '/v1/payments/3254564310_0', undefined, { 'if-none-match': etag })).status).toBe(
      304,
    );
    startWorker();
    await deliver(web.url, statusEvent('e1', 9, '20261127100300'));
    await waitFor(async () => (await api('GET', '/v1/payments/3254564310_0')).json.stage === 'captured');
    expect((await api('GET', '/v1/payments/3254564310_0', undefined, { 'if-none-match': etag })).status).toBe(
      200,
    );
  });
});

describe('GET /v1/payments?merchantReference and /events', () => {
  it('lists every payment of one order, and a payment timeline oldest first', async () => {
    startWorker();
    await api('POST', '/v1/payments', registration);
    await api('POST', '/v1/payments', { ...registration, paymentId: '3254564310_1' });
    await deliver(web.url, statusEvent('t1', 5, '20261127100100'));
    await deliver(web.url, statusEvent('t2', 9, '20261127100300'));
    await waitFor(async () => (await api('GET', '/v1/payments/3254564310_0')).json.stage === 'captured');

    const list = await api('GET', '/v1/payments?merchantReference=order-1001');
    expect(list.json.payments.map((p: Json) => p.paymentId)).toEqual(['3254564310_0', '3254564310_1']);

    const timeline = (await api('GET', '/v1/payments/3254564310_0/events')).json.timeline as Json[];
    expect(
      timeline.map((entry) => (entry.entry === 'event' ? `event ${entry.eventId}` : `change ${entry.kind}`)),
    ).toEqual(['change registered', 'event t1', 'change status', 'event t2', 'change status']);
  });

  it('answers 400 naming merchantReference when it is missing', async () => {
    const res = await api('GET', '/v1/payments');
    expect(res.status).toBe(400);
    expect(res.json.message).toContain('merchantReference');
  });
});

describe('GET /v1/changes', () => {
  it('rejects a cursor it never gave out', async () => {
    const res = await api('GET', '/v1/changes?after=not-a-cursor');
    expect(res.status).toBe(400);
    expect(res.json.error).toBe('invalid_cursor');
  });

  it('answers 400 naming limit when it is out of range', async () => {
    const res = await api('GET', '/v1/changes?limit=5000');
    expect(res.status).toBe(400);
    expect(res.json.message).toContain('limit');
  });

  it('holds a long-poll open until a change arrives', async () => {
    startWorker();
    const start = await api('GET', '/v1/changes?after=0');
    const polling = api('GET', `/v1/changes?after=${start.json.next}&wait=10`);
    await new Promise((resolve) => setTimeout(resolve, 300));
    await api('POST', '/v1/payments', registration);
    const res = await polling;
    expect(res.json.changes).toHaveLength(1);
    expect(res.json.changes[0]).toMatchObject({ kind: 'registered', paymentId: '3254564310_0' });
  });

  it('never skips or repeats a change across pages while the worker writes', async () => {
    startWorker();
    const seen: string[] = [];
    let cursor = '0';
    const payments = 20;
    const total = payments * 3;
    const sending = (async () => {
      for (let p = 0; p < payments; p++) {
        const paymentId = `88${p}_0`;
        for (const [i, code] of [5, 91, 9].entries()) {
          await deliver(
            web.url,
            JSON.stringify(
              paymentEvent({
                eventId: `f${p}-${i}`,
                paymentId,
                statusCode: code,
                changeTime: `2026112710000${i}`,
              }),
            ),
          );
        }
      }
      await waitFor(async () => (await web.queue.getJobCounts('completed')).completed === total, 15_000);
    })();
    let written = false;
    void sending.then(() => (written = true));
    const deadline = Date.now() + 20_000;
    for (;;) {
      const allWritten = written;
      const page = await api('GET', `/v1/changes?after=${cursor}&limit=7&wait=1`);
      for (const change of page.json.changes) seen.push(`${change.paymentId}:${change.toStatusCode}`);
      cursor = page.json.next;
      // Every event was applied before this read began, and it found nothing new: the reader is at the end.
      if (allWritten && page.json.changes.length === 0) break;
      if (Date.now() > deadline)
        throw new Error(`reader not at the end of the feed after 20 s: ${seen.length}`);
    }
    await sending;
    // Concurrent jobs may apply one payment's events in either order, and an event older than the one held is
    // superseded without a change, so the feed holds between one and three changes per payment; the reader,
    // paging while they were written, must have seen exactly those, in order, each once.
    const feed = (await web.ledger.listChanges(0, 1_000)).map((c) => `${c.paymentId}:${c.toStatusCode}`);
    expect(seen).toEqual(feed);
    expect(new Set(seen).size).toBe(seen.length);
    for (let p = 0; p < payments; p++) expect(seen).toContain(`88${p}_0:9`);
  });
});

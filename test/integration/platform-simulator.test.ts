import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, request, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { init } from 'onlinepayments-sdk-nodejs';
import { verifyWebhookSignature } from '../../src/platform/webhook-signature';
import { startPlatformSimulator, TEST_AMOUNTS, type PlatformSimulator } from '../../src/simulator';

const MERCHANT = 'MyPSPID';
const KEY_ID = 'sim-key-id';
const SECRET = 'sim-api-secret';
const PAYMENT = '3254564310_0';

interface Answer {
  status: number;
  body: unknown;
}

/** A GET signed by hand with node:crypto (no X-GCS headers), so the simulator is judged independently. */
function signedHeaders(path: string, options: { secret?: string; keyId?: string; date?: Date } = {}) {
  const date = (options.date ?? new Date()).toUTCString();
  const signature = createHmac('sha256', options.secret ?? SECRET)
    .update(`GET\n\n${date}\n${path}\n`)
    .digest('base64');
  return { Date: date, Authorization: `GCS v1HMAC:${options.keyId ?? KEY_ID}:${signature}` };
}

function get(baseUrl: string, path: string, headers: Record<string, string>): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(`${baseUrl}${path}`, { headers, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as unknown }));
    });
    req.on('error', reject);
    req.end();
  });
}

const errorShape = (status: number) => ({
  errorId: expect.any(String),
  errors: [
    {
      errorCode: expect.any(String),
      httpStatusCode: status,
      id: expect.any(String),
      category: expect.any(String),
      message: expect.any(String),
    },
  ],
});

describe('platform simulator API', () => {
  let simulator: PlatformSimulator;
  const detailsPath = `/v2/${MERCHANT}/payments/${PAYMENT}/details`;

  beforeEach(async () => {
    simulator = await startPlatformSimulator({
      merchantId: MERCHANT,
      apiKeyId: KEY_ID,
      apiSecret: SECRET,
      webhookKeys: new Map([['hook-key', 'hook-secret']]),
    });
    simulator.createPayment({ paymentId: PAYMENT, amount: 1500 });
  });

  afterEach(async () => {
    await simulator.close();
  });

  it('answers a correctly signed GetPaymentDetails with the stored body', async () => {
    const answer = await get(simulator.url, detailsPath, signedHeaders(detailsPath));
    expect(answer).toEqual({ status: 200, body: simulator.getPayment(PAYMENT) });
    expect(simulator.detailsCalls(PAYMENT)).toBe(1);
  });

  it('accepts what the official SDK sends', async () => {
    const sdk = init({
      host: '127.0.0.1',
      port: Number(new URL(simulator.url).port),
      scheme: 'http',
      apiKeyId: KEY_ID,
      secretApiKey: SECRET,
      integrator: 'paystate-test',
    });
    const details = await sdk.payments.getPaymentDetails(MERCHANT, PAYMENT);
    expect(details.status).toBe(200);
    const probe = await sdk.services.testConnection(MERCHANT);
    expect(probe).toMatchObject({ status: 200, body: { result: 'OK' } });
    const valid = await sdk.webhooks.validateWebhookCredentials(MERCHANT, {
      key: 'hook-key',
      secret: 'hook-secret',
    });
    expect(valid.body).toEqual({ result: 'VALID' });
    const invalid = await sdk.webhooks.validateWebhookCredentials(MERCHANT, {
      key: 'hook-key',
      secret: 'nope',
    });
    expect(invalid.body).toEqual({ result: 'INVALID' });
  });

  describe('rejects with 401 and the platform error shape', () => {
    it('rejects an unsigned request', async () => {
      const answer = await get(simulator.url, detailsPath, { Date: new Date().toUTCString() });
      expect(answer).toEqual({ status: 401, body: errorShape(401) });
    });

    it('rejects a request signed with another secret', async () => {
      const answer = await get(simulator.url, detailsPath, signedHeaders(detailsPath, { secret: 'wrong' }));
      expect(answer).toEqual({ status: 401, body: errorShape(401) });
    });

    it('rejects a signature made for another path', async () => {
      const otherPath = `/v2/${MERCHANT}/payments/999_0/details`;
      const answer = await get(simulator.url, detailsPath, signedHeaders(otherPath));
      expect(answer).toEqual({ status: 401, body: errorShape(401) });
    });

    it('rejects an unknown API key id', async () => {
      const answer = await get(simulator.url, detailsPath, signedHeaders(detailsPath, { keyId: 'other' }));
      expect(answer).toEqual({ status: 401, body: errorShape(401) });
    });

    it('rejects a correctly signed request whose Date is 16 minutes old', async () => {
      const date = new Date(Date.now() - 16 * 60_000);
      const answer = await get(simulator.url, detailsPath, signedHeaders(detailsPath, { date }));
      expect(answer).toEqual({ status: 401, body: errorShape(401) });
    });

    it('rejects testconnection with a wrong signature', async () => {
      const path = `/v2/${MERCHANT}/services/testconnection`;
      const answer = await get(simulator.url, path, signedHeaders(path, { secret: 'wrong' }));
      expect(answer).toEqual({ status: 401, body: errorShape(401) });
    });
  });

  it('answers 403 for another merchant and 404 for an unknown payment', async () => {
    const otherMerchant = `/v2/someone-else/payments/${PAYMENT}/details`;
    expect(await get(simulator.url, otherMerchant, signedHeaders(otherMerchant))).toEqual({
      status: 403,
      body: errorShape(403),
    });
    const unknown = `/v2/${MERCHANT}/payments/404_0/details`;
    expect(await get(simulator.url, unknown, signedHeaders(unknown))).toEqual({
      status: 404,
      body: errorShape(404),
    });
  });

  it('accepts a Date up to 15 minutes off', async () => {
    const date = new Date(Date.now() - 14 * 60_000);
    expect((await get(simulator.url, detailsPath, signedHeaders(detailsPath, { date }))).status).toBe(200);
  });

  it('answers testconnection OK when signed right', async () => {
    const path = `/v2/${MERCHANT}/services/testconnection`;
    expect(await get(simulator.url, path, signedHeaders(path))).toEqual({
      status: 200,
      body: { result: 'OK' },
    });
  });

  it('fails the next requests on demand, before checking anything', async () => {
    simulator.failNext(2, 503);
    expect((await get(simulator.url, detailsPath, {})).status).toBe(503);
    expect(await get(simulator.url, detailsPath, signedHeaders(detailsPath))).toEqual({
      status: 503,
      body: errorShape(503),
    });
    expect((await get(simulator.url, detailsPath, signedHeaders(detailsPath))).status).toBe(200);
    expect(simulator.requests.map((r) => r.status)).toEqual([503, 503, 200]);
  });
});

describe('platform simulator test amounts', () => {
  let simulator: PlatformSimulator;

  beforeEach(async () => {
    simulator = await startPlatformSimulator({ merchantId: MERCHANT, apiKeyId: KEY_ID, apiSecret: SECRET });
  });

  afterEach(async () => {
    await simulator.close();
  });

  const codes = (payment: { Operations: Array<{ statusOutput: { statusCode: number } }> }) =>
    payment.Operations.map((op) => op.statusOutput.statusCode);

  it.each([
    [1500, 9, 'CAPTURED', 'COMPLETED', [9]],
    [TEST_AMOUNTS.refusedSale, 2, 'REJECTED', 'UNSUCCESSFUL', [2]],
    [TEST_AMOUNTS.refusedCapture, 93, 'REJECTED_CAPTURE', 'UNSUCCESSFUL', [5, 93]],
    [TEST_AMOUNTS.uncertainCapture, 92, 'CAPTURE_REQUESTED', 'PENDING_CONNECT_OR_3RD_PARTY', [5, 92]],
    [TEST_AMOUNTS.refusedRefund, 9, 'CAPTURED', 'COMPLETED', [9]],
    [TEST_AMOUNTS.uncertainRefund, 9, 'CAPTURED', 'COMPLETED', [9]],
  ])('amount %i gives statusCode %i (%s / %s)', async (amount, code, status, category, operations) => {
    const payment = simulator.createPayment({ paymentId: PAYMENT, amount, merchantReference: 'order-1' });
    expect(payment).toMatchObject({
      id: PAYMENT,
      status,
      statusOutput: {
        statusCode: code,
        statusCategory: category,
        statusCodeChangeDateTime: expect.stringMatching(/^\d{14}$/),
      },
      paymentOutput: {
        amountOfMoney: { amount, currencyCode: 'EUR' },
        references: { merchantReference: 'order-1' },
      },
    });
    expect(codes(payment)).toEqual(operations);
    expect(simulator.getPayment(PAYMENT)).toEqual(payment);
  });

  it('keeps the authorisation of a 1309 payment standing and gives the refused capture its own id', () => {
    const payment = simulator.createPayment({ paymentId: PAYMENT, amount: TEST_AMOUNTS.refusedCapture });
    expect(payment.statusOutput).toMatchObject({ isAuthorized: true, errors: [expect.any(Object)] });
    expect(payment.Operations.map((op) => op.id)).toEqual([PAYMENT, '3254564310_1']);
  });

  it('refuses a refund of a 1303 payment (83) and leaves a 1203 refund uncertain (82)', () => {
    simulator.createPayment({ paymentId: '1_0', amount: TEST_AMOUNTS.refusedRefund });
    const refused = simulator.refundPayment('1_0');
    expect(codes(refused)).toEqual([9, 83]);
    expect(refused.statusOutput.statusCode).toBe(9);

    simulator.createPayment({ paymentId: '2_0', amount: TEST_AMOUNTS.uncertainRefund });
    const uncertain = simulator.refundPayment('2_0');
    expect(codes(uncertain)).toEqual([9, 82]);
    expect(uncertain.Operations[1]?.status).toBe('REFUND_REQUESTED');
  });

  it('refunds other payments, partly and then fully', () => {
    simulator.createPayment({ paymentId: '1_0', amount: 1000 });
    const partly = simulator.refundPayment('1_0', { amount: 400 });
    expect(partly.status).toBe('CAPTURED');
    const fully = simulator.refundPayment('1_0');
    expect(
      fully.Operations.map((op) => [op.id, op.statusOutput.statusCode, op.amountOfMoney.amount]),
    ).toEqual([
      ['1_0', 9, 1000],
      ['1_1', 8, 400],
      ['1_2', 8, 600],
    ]);
    expect(fully).toMatchObject({
      status: 'REFUNDED',
      statusOutput: { statusCode: 8, statusCategory: 'REFUNDED' },
    });
  });

  it('answers a body set by a test verbatim and lets it change', async () => {
    const fixture = JSON.parse(
      readFileSync(
        join(__dirname, '../fixtures/plugin-magento-core_stub_getpaymentdetails_rejected.json'),
        'utf8',
      ),
    ) as object;
    simulator.setPayment('3254564315_0', fixture);
    expect(simulator.getPayment('3254564315_0')).toEqual(fixture);
    const updated = simulator.updatePayment('3254564315_0', (details) => {
      details.statusOutput.statusCode = 9;
    });
    expect(updated.statusOutput.statusCode).toBe(9);
    expect(() => simulator.updatePayment('nope', () => undefined)).toThrow(/no payment nope/);
  });
});

interface Delivery {
  body: Buffer;
  headers: IncomingHttpHeaders;
}

describe('webhook sender', () => {
  const keyRing = new Map([['key-1', 'webhook secret 1']]);
  const envelope = {
    apiVersion: 'v1',
    id: 'evt-1',
    created: '2024-01-01T10:00:00.000+0100',
    merchantId: MERCHANT,
    type: 'payment.captured',
    payment: { id: PAYMENT },
  };
  let receiver: Server;
  let url: string;
  let deliveries: Delivery[];
  let answers: number[];
  let simulator: PlatformSimulator;

  /** Answers with the next status in `answers` if the signature verifies (then 200), else 401. */
  beforeEach(async () => {
    deliveries = [];
    answers = [];
    receiver = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        const body = Buffer.concat(chunks);
        deliveries.push({ body, headers: req.headers });
        try {
          verifyWebhookSignature(
            body,
            {
              signature: req.headers['x-gcs-signature'] as string,
              keyId: req.headers['x-gcs-keyid'] as string,
            },
            keyRing,
          );
        } catch {
          res.writeHead(401).end();
          return;
        }
        res.writeHead(answers.shift() ?? 200).end();
      });
    });
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/webhooks`;
    simulator = await startPlatformSimulator({ merchantId: MERCHANT, apiKeyId: KEY_ID, apiSecret: SECRET });
  });

  afterEach(async () => {
    await simulator.close();
    receiver.closeAllConnections();
    await new Promise<void>((resolve) => receiver.close(() => resolve()));
  });

  it('signs deliveries so that the receiver verifier accepts them', async () => {
    const statuses = await simulator.sendWebhook(url, envelope, {
      keyId: 'key-1',
      secret: 'webhook secret 1',
    });
    expect(statuses).toEqual([200]);
    expect(deliveries).toHaveLength(1);
    expect(deliveries[0]?.body.toString('utf8')).toBe(JSON.stringify(envelope));
    expect(deliveries[0]?.headers['content-type']).toBe('application/json');
  });

  it('signs an array envelope too', async () => {
    const statuses = await simulator.sendWebhook(url, [envelope], {
      keyId: 'key-1',
      secret: 'webhook secret 1',
    });
    expect(statuses).toEqual([200]);
    expect(JSON.parse(deliveries[0]?.body.toString('utf8') ?? '')).toEqual([envelope]);
  });

  it('sends raw bytes untouched, with the signature the SDK fixtures carry', async () => {
    const raw = readFileSync(join(__dirname, '../fixtures/sdk-java_webhooks_helper-valid-body'));
    await simulator.sendWebhook(url, raw, { keyId: 'dummy-key-id', secret: 'hello+world' });
    expect(deliveries[0]?.body.equals(raw)).toBe(true);
    expect(deliveries[0]?.headers['x-gcs-signature']).toBe('2S7doBj/GnJnacIjSJzr5fxGM5xmfQyFAwxv1I53ZEk=');
    expect(deliveries[0]?.headers['x-gcs-keyid']).toBe('dummy-key-id');
  });

  it('is refused by the receiver when signed with another secret', async () => {
    const statuses = await simulator.sendWebhook(url, envelope, { keyId: 'key-1', secret: 'not it' });
    expect(statuses).toEqual([401]);
  });

  it('re-delivers a non-2xx answer until it is accepted', async () => {
    answers = [500, 503];
    const statuses = await simulator.sendWebhook(url, envelope, {
      keyId: 'key-1',
      secret: 'webhook secret 1',
      retry: { attempts: 5, delayMs: 10 },
    });
    expect(statuses).toEqual([500, 503, 200]);
    expect(new Set(deliveries.map((d) => d.body.toString('utf8')))).toEqual(
      new Set([JSON.stringify(envelope)]),
    );
  });

  it('stops re-delivering after the given attempts', async () => {
    answers = [500, 500, 500, 500];
    const statuses = await simulator.sendWebhook(url, envelope, {
      keyId: 'key-1',
      secret: 'webhook secret 1',
      retry: { attempts: 3, delayMs: 10 },
    });
    expect(statuses).toEqual([500, 500, 500]);
  });

  it('drops, duplicates and reorders on request', async () => {
    const options = { keyId: 'key-1', secret: 'webhook secret 1' };
    expect(await simulator.sendWebhook(url, envelope, { ...options, drop: true })).toEqual([]);
    expect(deliveries).toHaveLength(0);
    expect(await simulator.sendWebhook(url, envelope, { ...options, duplicate: true })).toEqual([200, 200]);
    expect(deliveries).toHaveLength(2);

    deliveries = [];
    await Promise.all([
      simulator.sendWebhook(url, { ...envelope, id: 'first' }, { ...options, delayMs: 150 }),
      simulator.sendWebhook(url, { ...envelope, id: 'second' }, options),
    ]);
    expect(deliveries.map((d) => (JSON.parse(d.body.toString('utf8')) as { id: string }).id)).toEqual([
      'second',
      'first',
    ]);
  });
});

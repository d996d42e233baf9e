import { createServer, type IncomingHttpHeaders, type RequestListener, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { Writable } from 'node:stream';
import winston from 'winston';
import { createLogger, type Logger } from '../../src/log';
import {
  createPlatformClient,
  PlatformError,
  type PlatformClient,
  type PlatformClientOptions,
} from '../../src/platform/platform-client';
import { startPlatformSimulator, type PlatformSimulator } from '../../src/simulator';
import { waitFor } from '../helpers/wait-for';

const MERCHANT = 'MyPSPID';
const KEY_ID = 'sim-key-id';
const SECRET = 'sIm-SeCrEt-0f-th3-api-Key-do-not-leak+/=';

function silentLog(): Logger {
  const log = createLogger({ level: 'debug', json: true });
  log.silent = true;
  return log;
}

/** A logger whose JSON lines land in `lines`, to prove what is and is not written. */
function capturingLog(): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  const log = createLogger({ level: 'debug', json: true });
  log.clear();
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(chunk.toString('utf8'));
      done();
    },
  });
  log.add(new winston.transports.Stream({ stream }));
  return { log, lines };
}

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

async function closeServer(server: Server): Promise<void> {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

describe('platform client against the simulator', () => {
  let simulator: PlatformSimulator;
  let clients: PlatformClient[] = [];

  beforeEach(async () => {
    simulator = await startPlatformSimulator({ merchantId: MERCHANT, apiKeyId: KEY_ID, apiSecret: SECRET });
  });

  afterEach(async () => {
    clients.forEach((client) => client.close());
    clients = [];
    await simulator.close();
  });

  function buildClient(overrides: Partial<PlatformClientOptions> = {}): PlatformClient {
    const client = createPlatformClient({
      url: simulator.url,
      merchantId: MERCHANT,
      apiKeyId: KEY_ID,
      apiSecret: SECRET,
      backoffBaseMs: 10,
      log: silentLog(),
      ...overrides,
    });
    clients.push(client);
    return client;
  }

  it('returns the details body of a known payment', async () => {
    const created = simulator.createPayment({ paymentId: '3254564310_0', amount: 1500 });
    const result = await buildClient().getPaymentDetails('3254564310_0');
    expect(result).toEqual({ kind: 'found', body: created });
    expect(simulator.requests.map((r) => [r.method, r.path, r.status])).toEqual([
      ['GET', `/v2/${MERCHANT}/payments/3254564310_0/details`, 200],
    ]);
  });

  it('reports an unknown payment as not_found without retrying', async () => {
    const result = await buildClient().getPaymentDetails('404404_0');
    expect(result).toEqual({ kind: 'not_found', errorId: expect.any(String) });
    expect(simulator.detailsCalls('404404_0')).toBe(1);
  });

  it('encodes the payment id into the path', async () => {
    simulator.setPayment('odd/id ?#', { id: 'odd/id ?#' });
    const result = await buildClient().getPaymentDetails('odd/id ?#');
    expect(result).toEqual({ kind: 'found', body: { id: 'odd/id ?#' } });
    expect(simulator.requests[0]?.path).toBe(`/v2/${MERCHANT}/payments/odd%2Fid%20%3F%23/details`);
  });

  it('retries a 429 and then a 500 and ends found', async () => {
    simulator.createPayment({ paymentId: '1_0', amount: 1000 });
    simulator.failNext(1, 429);
    simulator.failNext(1, 500);
    const result = await buildClient().getPaymentDetails('1_0');
    expect(result.kind).toBe('found');
    expect(simulator.requests.map((r) => r.status)).toEqual([429, 500, 200]);
  });

  it('throws a retryable PlatformError once the retries are used up', async () => {
    simulator.createPayment({ paymentId: '1_0', amount: 1000 });
    simulator.failNext(3, 503);
    const error = await buildClient({ retries: 2 })
      .getPaymentDetails('1_0')
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PlatformError);
    expect(error).toMatchObject({
      name: 'PlatformError',
      reason: 'server_error',
      status: 503,
      retryable: true,
    });
    expect(simulator.detailsCalls('1_0')).toBe(3);
  });

  it('fails for good on a 401 from a wrong secret, without retrying', async () => {
    simulator.createPayment({ paymentId: '1_0', amount: 1000 });
    const error = await buildClient({ apiSecret: 'not-the-secret' })
      .getPaymentDetails('1_0')
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PlatformError);
    expect(error).toMatchObject({ reason: 'authentication', status: 401, retryable: false });
    expect((error as PlatformError).errorId).toEqual(expect.any(String));
    expect(simulator.requests.map((r) => r.status)).toEqual([401]);
  });

  it('gives up on a slow answer at timeoutMs and frees the socket', async () => {
    simulator.createPayment({ paymentId: '1_0', amount: 1000 });
    simulator.delayNext(1, 10_000);
    const error = await buildClient({ timeoutMs: 200, retries: 0 })
      .getPaymentDetails('1_0')
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ name: 'PlatformError', reason: 'timeout', retryable: true });
    // The simulator would hold the connection for 10 s; it closes now only because the client destroyed it.
    await waitFor(async () => (await simulator.connectionCount()) === 0, 2_000);
    expect(simulator.requests.map((r) => r.status)).toEqual([0]);
  });

  it('retries after a timeout and ends found', async () => {
    simulator.createPayment({ paymentId: '1_0', amount: 1000 });
    simulator.delayNext(1, 10_000);
    const result = await buildClient({ timeoutMs: 200, retries: 1 }).getPaymentDetails('1_0');
    expect(result.kind).toBe('found');
    expect(simulator.requests.map((r) => r.status)).toEqual([0, 200]);
  });

  it('starts at most maxRps calls in any one-second window', async () => {
    simulator.createPayment({ paymentId: '1_0', amount: 1000 });
    const maxRps = 5;
    const api = buildClient({ maxRps });
    await Promise.all(Array.from({ length: 3 * maxRps }, () => api.getPaymentDetails('1_0')));

    const arrivals = simulator.requests.map((r) => r.at).sort((a, b) => a - b);
    expect(arrivals).toHaveLength(3 * maxRps);
    // maxRps + 1 consecutive arrivals never fit in one second (100 ms slack for network jitter on arrival).
    for (let i = 0; i + maxRps < arrivals.length; i++) {
      expect((arrivals[i + maxRps] ?? 0) - (arrivals[i] ?? 0)).toBeGreaterThanOrEqual(900);
    }
    // ...while a first burst of maxRps is let through at once.
    expect((arrivals[maxRps - 1] ?? 0) - (arrivals[0] ?? 0)).toBeLessThan(500);
  });

  describe('testConnection', () => {
    it('reports ok for good credentials', async () => {
      await expect(buildClient().testConnection()).resolves.toEqual({ ok: true });
      expect(simulator.requests[0]?.path).toBe(`/v2/${MERCHANT}/services/testconnection`);
    });

    it('reports an authentication failure for a wrong key', async () => {
      const probe = await buildClient({ apiKeyId: 'other-key' }).testConnection();
      expect(probe).toMatchObject({ ok: false, reason: 'authentication', status: 401 });
    });

    it('reports an unreachable platform', async () => {
      const url = simulator.url;
      await simulator.close();
      simulator = await startPlatformSimulator({ merchantId: MERCHANT, apiKeyId: KEY_ID, apiSecret: SECRET });
      const probe = await buildClient({ url }).testConnection();
      expect(probe).toMatchObject({ ok: false, reason: 'unreachable' });
    });
  });

  it('never writes the secret or the Authorization header into errors or logs', async () => {
    const { log, lines } = capturingLog();
    simulator.createPayment({ paymentId: '1_0', amount: 1000 });
    const failures: unknown[] = [];
    const api = buildClient({ log, retries: 1, timeoutMs: 200 });

    simulator.failNext(2, 500);
    failures.push(await api.getPaymentDetails('1_0').catch((e: unknown) => e));
    simulator.delayNext(2, 5_000);
    failures.push(await api.getPaymentDetails('1_0').catch((e: unknown) => e));
    failures.push(
      await buildClient({ log, apiSecret: `${SECRET}x` })
        .getPaymentDetails('1_0')
        .catch((e) => e),
    );
    const wrongMerchant = buildClient({ log, merchantId: 'someone-else' });
    failures.push(await wrongMerchant.getPaymentDetails('1_0').catch((e: unknown) => e));
    failures.push(await wrongMerchant.testConnection());
    const closed = await startPlatformSimulator({
      merchantId: MERCHANT,
      apiKeyId: KEY_ID,
      apiSecret: SECRET,
    });
    await closed.close();
    failures.push(
      await buildClient({ log, url: closed.url, retries: 0 })
        .getPaymentDetails('1_0')
        .catch((e) => e),
    );

    expect(failures.every((f) => f instanceof PlatformError || (f as { ok?: boolean }).ok === false)).toBe(
      true,
    );
    expect(lines.length).toBeGreaterThan(0);
    const everything = [
      ...failures.flatMap((f) => {
        const chain: string[] = [];
        for (let e: unknown = f; e !== undefined; e = (e as { cause?: unknown }).cause) {
          chain.push(
            String((e as { message?: unknown }).message),
            (e as Error).stack ?? '',
            JSON.stringify(e),
          );
        }
        return chain;
      }),
      ...lines,
    ].join('\n');
    expect(everything).not.toContain(SECRET);
    // Every Authorization value starts `GCS v1HMAC:`; none may show up anywhere.
    expect(everything).not.toMatch(/v1HMAC/i);
  });
});

describe('platform client on the wire', () => {
  let server: Server | undefined;
  let client: PlatformClient | undefined;

  afterEach(async () => {
    client?.close();
    client = undefined;
    if (server) await closeServer(server);
    server = undefined;
  });

  async function serve(handler: RequestListener): Promise<string> {
    server = createServer(handler);
    return listen(server);
  }

  function buildClient(url: string, overrides: Partial<PlatformClientOptions> = {}): PlatformClient {
    client = createPlatformClient({
      url,
      merchantId: MERCHANT,
      apiKeyId: KEY_ID,
      apiSecret: SECRET,
      backoffBaseMs: 10,
      log: silentLog(),
      ...overrides,
    });
    return client;
  }

  it('sends a request the SDK own authenticator signs the same way', async () => {
    let seen: { method: string; url: string; headers: IncomingHttpHeaders } | undefined;
    const url = await serve((req, res) => {
      seen = { method: req.method ?? '', url: req.url ?? '', headers: req.headers };
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"id":"1_0"}');
    });
    await buildClient(url).getPaymentDetails('1_0');
    if (seen === undefined) throw new Error('nothing arrived');

    // The SDK's own V1HmacAuthenticator, loaded from its CommonJS build (its package exports hide it).
    const sdkDir = dirname(require.resolve('onlinepayments-sdk-nodejs'));
    const { V1HmacAuthenticator } = createRequire(__filename)(join(sdkDir, 'utils/authentication.js')) as {
      V1HmacAuthenticator: new (c: { apiKeyId: string; secretApiKey: string }) => {
        getAuthorization(
          m: string,
          ct: string,
          d: string,
          h: Array<{ key: string; value: string }>,
          p: string,
        ): Promise<string>;
      };
    };
    const gcsHeaders = Object.entries(seen.headers)
      .filter(([name]) => name.startsWith('x-gcs-'))
      .map(([key, value]) => ({ key, value: String(value) }));
    expect(gcsHeaders.map((h) => h.key)).toEqual(['x-gcs-servermetainfo']);
    const sdkAuthorization = await new V1HmacAuthenticator({
      apiKeyId: KEY_ID,
      secretApiKey: SECRET,
    }).getAuthorization(
      seen.method,
      seen.headers['content-type'] ?? '',
      seen.headers.date ?? '',
      gcsHeaders,
      seen.url,
    );
    expect(seen.headers.authorization).toBe(sdkAuthorization);
    expect(seen.url).toBe(`/v2/${MERCHANT}/payments/1_0/details`);
    expect(Date.parse(seen.headers.date ?? '')).not.toBeNaN();
    const metaInfo = JSON.parse(
      Buffer.from(String(seen.headers['x-gcs-servermetainfo']), 'base64').toString(),
    );
    expect(metaInfo).toMatchObject({ integrator: 'paystate' });
  });

  it('throws a final PlatformError on a 400', async () => {
    let calls = 0;
    const url = await serve((_req, res) => {
      calls++;
      res.writeHead(400, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ errorId: 'e-400', errors: [{ id: 'INVALID_VALUE', httpStatusCode: 400 }] }));
    });
    const error = await buildClient(url)
      .getPaymentDetails('1_0')
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ reason: 'rejected', status: 400, retryable: false, errorId: 'e-400' });
    expect((error as Error).message).toContain('INVALID_VALUE');
    expect(calls).toBe(1);
  });

  it('times out an answer that stalls after its headers and frees the socket', async () => {
    const url = await serve((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"id":');
    });
    const error = await buildClient(url, { timeoutMs: 200, retries: 0 })
      .getPaymentDetails('1_0')
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ reason: 'timeout', retryable: true });
    const open = () =>
      new Promise<number>((resolve) => server?.getConnections((_e, count) => resolve(count)));
    await waitFor(async () => (await open()) === 0, 2_000);
  });
});

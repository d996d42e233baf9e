import { Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import { loadConfig } from '../../src/config';
import { createLogger } from '../../src/log';
import { createRedisConnection, createStatusWorker, STATUS_EVENTS_QUEUE } from '../../src/queue';
import { buildWeb, type BuiltWeb } from '../helpers/build-web';
import { deliver, paymentEvent } from '../helpers/deliveries';
import { waitFor } from '../helpers/wait-for';

const ADMIN_TOKEN = 'admin-token:with=odd/chars';
const BOARD = '/admin/queues';

const log = createLogger({ level: 'error', json: true });
log.silent = true;

let web: BuiltWeb;
let worker: Worker | undefined;
let connection: Redis | undefined;

afterEach(async () => {
  await worker?.close();
  worker = undefined;
  connection?.disconnect();
  connection = undefined;
  await web?.close();
});

const basic = (user: string, password: string) =>
  `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
const bearer = (token: string) => `Bearer ${token}`;

async function board(path: string, authorization?: string, method = 'GET') {
  return fetch(`${web.url}${BOARD}${path}`, {
    method,
    headers: authorization ? { authorization } : {},
  });
}

function workerConnection(): Redis {
  connection = createRedisConnection(process.env.TEST_REDIS_URL!, { role: 'worker' });
  return connection;
}

describe('the queue board behind ADMIN_TOKEN', () => {
  beforeEach(async () => {
    web = await buildWeb({ adminToken: ADMIN_TOKEN });
  });

  it('serves the board to HTTP basic credentials with any user name', async () => {
    const res = await board('', basic('oncall', ADMIN_TOKEN));
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/text\/html/);
  });

  it('serves the board API to a bearer token', async () => {
    const res = await board('/api/queues', bearer(ADMIN_TOKEN));
    expect(res.status).toBe(200);
    const json = (await res.json()) as { queues: { name: string }[] };
    expect(json.queues.map((queue) => queue.name)).toContain(STATUS_EVENTS_QUEUE);
  });

  describe('rejects missing or wrong credentials with 401 and a Basic challenge', () => {
    it.each([
      ['no credentials', undefined, 'missing_credentials'],
      ['a wrong basic password', basic('oncall', 'guess'), 'invalid_credentials'],
      ['a wrong bearer token', bearer('guess'), 'invalid_credentials'],
      ['the token given as user name', basic(ADMIN_TOKEN, ''), 'invalid_credentials'],
      ['an API token scheme it does not know', `Token ${ADMIN_TOKEN}`, 'missing_credentials'],
    ])('refuses %s', async (_name, authorization, error) => {
      const res = await board('/api/queues', authorization);
      expect(res.status).toBe(401);
      expect(res.headers.get('www-authenticate')).toBe('Basic realm="paystate"');
      expect(((await res.json()) as { error: string }).error).toBe(error);
    });

    it('guards the static assets too', async () => {
      expect((await board('/static/images/logo.svg')).status).toBe(401);
      expect((await board('/static/images/logo.svg', basic('oncall', ADMIN_TOKEN))).status).toBe(200);
    });
  });

  it('re-queues a failed job through the board, as the CLI does, and records who did it', async () => {
    await web.close();
    web = await buildWeb({ adminToken: ADMIN_TOKEN, jobOptions: { attempts: 1 } });
    // A deployment with a bug fails the event; after the fix, the on-call engineer retries it.
    const broken = new Worker(
      STATUS_EVENTS_QUEUE,
      async (): Promise<void> => {
        throw new Error('bug in this deployment');
      },
      { connection: workerConnection() },
    );
    worker = broken;
    const event = paymentEvent({ eventId: 'evt-retry', paymentId: '7100000001_0', statusCode: 9 });
    expect((await deliver(web.url, JSON.stringify(event))).status).toBe(200);
    await waitFor(async () => (await web.queue.getJob('evt-retry'))?.failedReason !== undefined);
    await broken.close();
    connection!.disconnect();
    expect(await (await web.queue.getJob('evt-retry'))!.getState()).toBe('failed');

    const res = await board(
      `/api/queues/${STATUS_EVENTS_QUEUE}/evt-retry/retry`,
      basic('alice', ADMIN_TOKEN),
      'PUT',
    );
    expect(res.status).toBe(204);
    const job = await web.queue.getJob('evt-retry');
    expect(await job!.getState()).toBe('waiting');
    expect(job!.failedReason).toBeUndefined();

    worker = createStatusWorker({ connection: workerConnection(), ledger: web.ledger, log, concurrency: 1 });
    await waitFor(async () => (await web.ledger.getPayment('7100000001_0'))?.stage === 'captured');
    const [action] = await web.ledger.listActions(10);
    expect(action).toMatchObject({ actor: 'alice', action: 'failed.retry', target: 'evt-retry', count: 1 });
  });

  it('refuses to retry a job that has not failed', async () => {
    expect((await deliver(web.url, JSON.stringify(paymentEvent({ eventId: 'evt-wait' })))).status).toBe(200);
    const res = await board(`/api/queues/${STATUS_EVENTS_QUEUE}/evt-wait/retry`, bearer(ADMIN_TOKEN), 'PUT');
    expect(res.status).toBe(403);
    expect(await (await web.queue.getJob('evt-wait'))!.getState()).toBe('waiting');
  });

  it.each([['/obliterate'], ['/empty'], ['/clean/wait'], ['/retry/completed']])(
    'refuses PUT %s on the status-events queue, keeping its jobs',
    async (path) => {
      expect((await deliver(web.url, JSON.stringify(paymentEvent({ eventId: 'evt-keep' })))).status).toBe(
        200,
      );
      const res = await board(`/api/queues/${STATUS_EVENTS_QUEUE}${path}`, bearer(ADMIN_TOKEN), 'PUT');
      expect(res.status).toBe(403);
      expect(((await res.json()) as { message: string }).message).toMatch(/refused|only failed/);
      expect(await web.queue.getJob('evt-keep')).toBeDefined();
    },
  );
});

describe('without ADMIN_TOKEN', () => {
  it('does not mount the board at all', async () => {
    web = await buildWeb();
    expect((await board('', basic('oncall', 'anything'))).status).toBe(404);
    expect((await board('/api/queues', bearer('anything'))).status).toBe(404);
  });

  it('is refused in production', () => {
    expect(() => loadConfig({ NODE_ENV: 'production', WEBHOOK_KEYS: 'k:s', API_TOKENS: 't' })).toThrow(
      /ADMIN_TOKEN: required in production/,
    );
  });
});

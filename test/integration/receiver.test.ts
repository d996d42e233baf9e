import net from 'node:net';
import { once } from 'node:events';
import { gzipSync } from 'node:zlib';
import { buildWeb, type BuiltWeb } from '../helpers/build-web';
import { deliver, fixture, hmac, paymentEvent } from '../helpers/deliveries';
import { RedisServer } from '../helpers/redis-server';
import { waitFor } from '../helpers/wait-for';
import { Redis } from 'ioredis';

let web: BuiltWeb;

afterEach(async () => {
  await web?.close();
});

async function jobCount(): Promise<number> {
  const counts = await web.queue.getJobCounts('waiting', 'active', 'completed', 'failed', 'delayed');
  return Object.values(counts).reduce((sum, n) => sum + n, 0);
}

const bodyOf = (event: unknown) => Buffer.from(JSON.stringify(event));

describe('accepts signed deliveries', () => {
  beforeEach(async () => {
    web = await buildWeb();
  });

  it('queues a delivery signed as the platform signs it, with jobId = event id', async () => {
    const body = bodyOf(paymentEvent({ eventId: 'evt-1' }));
    const res = await deliver(web.url, body);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ received: 1 });
    const job = await web.queue.getJob('evt-1');
    expect(job?.data.rawBody).toBe(body.toString());
    expect(job?.data.keyId).toBe('key-new');
  });

  it('verifies with either key while two are active (rotation)', async () => {
    const body1 = bodyOf(paymentEvent({ eventId: 'evt-old' }));
    const body2 = bodyOf(paymentEvent({ eventId: 'evt-new' }));
    expect((await deliver(web.url, body1, { keyId: 'key-old', secret: 'old+secret/=' })).status).toBe(200);
    expect((await deliver(web.url, body2, { keyId: 'key-new', secret: 'new:secret==' })).status).toBe(200);
    expect(await jobCount()).toBe(2);
  });

  it('makes one job for a duplicate delivery and answers 2xx both times', async () => {
    const body = bodyOf(paymentEvent({ eventId: 'evt-dup' }));
    expect((await deliver(web.url, body)).status).toBe(200);
    expect((await deliver(web.url, body)).status).toBe(200);
    expect(await jobCount()).toBe(1);
  });

  it('makes one job for 20 identical deliveries sent in parallel, all answered 2xx', async () => {
    const body = bodyOf(paymentEvent({ eventId: 'evt-par' }));
    const answers = await Promise.all(Array.from({ length: 20 }, () => deliver(web.url, body)));
    expect(answers.map((res) => res.status)).toEqual(Array(20).fill(200));
    expect(await jobCount()).toBe(1);
  });

  it('takes a delivery at another spelling of the path and with a query string, as Express routes it', async () => {
    for (const [at, eventId] of [
      ['/Webhooks/', 'evt-case'],
      ['/webhooks?source=lb', 'evt-query'],
    ] as const) {
      const body = bodyOf(paymentEvent({ eventId }));
      const res = await fetch(`${web.url}${at}`, {
        method: 'POST',
        body: new Uint8Array(body),
        headers: { 'x-gcs-keyid': 'key-new', 'x-gcs-signature': hmac(body, 'new:secret==') },
      });
      expect([at, res.status, await res.json()]).toEqual([at, 200, { received: 1 }]);
      expect(await web.queue.getJob(eventId)).toBeDefined();
    }
    expect((await fetch(`${web.url}/webhooksx`, { method: 'POST', body: '{}' })).status).toBe(404);
  });

  it('queues every event of an array body', async () => {
    const body = bodyOf([paymentEvent({ eventId: 'evt-a1' }), paymentEvent({ eventId: 'evt-a2' })]);
    const res = await deliver(web.url, body);
    expect(res.status).toBe(200);
    expect((await web.queue.getJob('evt-a2'))?.data.rawIndex).toBe(1);
    expect(await jobCount()).toBe(2);
  });

  it('accepts an unknown event type', async () => {
    const res = await deliver(
      web.url,
      bodyOf(paymentEvent({ eventId: 'evt-x', type: 'payment.teleported' })),
    );
    expect(res.status).toBe(200);
    expect(await web.queue.getJob('evt-x')).toBeDefined();
  });

  it('accepts the SDK test body signed with its published key and signature', async () => {
    await web.close();
    web = await buildWeb({ keyRing: new Map([['dummy-key-id', 'hello+world']]) });
    const res = await deliver(web.url, fixture('sdk-java_webhooks_helper-valid-body'), {
      keyId: 'dummy-key-id',
      signature: '2S7doBj/GnJnacIjSJzr5fxGM5xmfQyFAwxv1I53ZEk=',
    });
    expect(res.status).toBe(200);
  });

  it('answers the endpoint-verification handshake with the header value verbatim as text/plain', async () => {
    const res = await fetch(`${web.url}/webhooks`, {
      headers: { 'X-GCS-Webhooks-Endpoint-Verification': 'a1B2+c3/=' },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
    expect(await res.text()).toBe('a1B2+c3/=');
  });
});

describe('rejects bad deliveries with nothing queued', () => {
  beforeEach(async () => {
    web = await buildWeb();
  });

  const expectRefusal = async (res: Response, status: number, error: string) => {
    expect(res.status).toBe(status);
    const json = (await res.json()) as { error: string; message: string };
    expect(json.error).toBe(error);
    expect(json.message.length).toBeGreaterThan(0);
    expect(await jobCount()).toBe(0);
  };

  it('rejects a tampered body', async () => {
    const body = bodyOf(paymentEvent({ eventId: 'evt-t' }));
    const tampered = Buffer.from(body.toString().replace('1500', '1'));
    await expectRefusal(
      await deliver(web.url, tampered, { signature: hmac(body, 'new:secret==') }),
      401,
      'invalid_signature',
    );
  });

  it('rejects a body with one trailing newline added after signing', async () => {
    const body = bodyOf(paymentEvent({ eventId: 'evt-nl' }));
    const res = await deliver(web.url, Buffer.concat([body, Buffer.from('\n')]), {
      signature: hmac(body, 'new:secret=='),
    });
    await expectRefusal(res, 401, 'invalid_signature');
  });

  it('rejects an unknown key id', async () => {
    await expectRefusal(
      await deliver(web.url, bodyOf(paymentEvent({ eventId: 'e' })), { keyId: 'key-gone' }),
      401,
      'unknown_key_id',
    );
  });

  it('rejects a delivery without a signature header', async () => {
    const res = await fetch(`${web.url}/webhooks`, {
      method: 'POST',
      body: JSON.stringify(paymentEvent({ eventId: 'e' })),
      headers: { 'x-gcs-keyid': 'key-new' },
    });
    await expectRefusal(res, 401, 'missing_signature');
  });

  it('rejects a signature made with the other key under this key id', async () => {
    const res = await deliver(web.url, bodyOf(paymentEvent({ eventId: 'e' })), {
      keyId: 'key-new',
      secret: 'old+secret/=',
    });
    await expectRefusal(res, 401, 'invalid_signature');
  });

  it('rejects a signed body that is not JSON', async () => {
    await expectRefusal(await deliver(web.url, Buffer.from('{"id": "e",')), 400, 'invalid_json');
  });

  it('rejects a signed body that is not UTF-8', async () => {
    await expectRefusal(await deliver(web.url, Buffer.from([0x7b, 0xff, 0xfe, 0x7d])), 400, 'invalid_json');
  });

  it('rejects a signed body with the wrong apiVersion', async () => {
    const body = bodyOf({ ...paymentEvent({ eventId: 'e' }), apiVersion: 'v0' });
    await expectRefusal(await deliver(web.url, body), 400, 'unsupported_api_version');
  });

  it('rejects a signed envelope without an id, naming the field', async () => {
    const event = paymentEvent({ eventId: 'e' });
    delete event.id;
    const res = await deliver(web.url, bodyOf(event));
    expect(res.status).toBe(400);
    expect(((await res.clone().json()) as { message: string }).message).toMatch(/id/);
    await expectRefusal(res, 400, 'invalid_envelope');
  });

  it('queues none of an array when one of its events is invalid', async () => {
    const bad = paymentEvent({ eventId: 'e2' });
    delete bad.merchantId;
    await expectRefusal(
      await deliver(web.url, bodyOf([paymentEvent({ eventId: 'e1' }), bad])),
      400,
      'invalid_envelope',
    );
  });

  it('rejects a body over the size limit with 413', async () => {
    const body = Buffer.alloc(65 * 1024, 'a');
    await expectRefusal(await deliver(web.url, body), 413, 'payload_too_large');
  });

  it('refuses a content coding with 415 instead of inflating it, even when the coded bytes are signed', async () => {
    const body = gzipSync(bodyOf(paymentEvent({ eventId: 'evt-gz' })));
    await expectRefusal(
      await deliver(web.url, body, { headers: { 'content-encoding': 'gzip' } }),
      415,
      'unsupported_content_encoding',
    );
    await expectRefusal(
      await deliver(web.url, bodyOf(paymentEvent({ eventId: 'evt-br' })), {
        headers: { 'content-encoding': 'br' },
      }),
      415,
      'unsupported_content_encoding',
    );
  });

  it('queues nothing from a delivery whose connection drops mid-body, and keeps serving', async () => {
    const body = bodyOf(paymentEvent({ eventId: 'evt-cut' }));
    const { port } = new URL(web.url);
    const socket = net.connect(Number(port), '127.0.0.1');
    await once(socket, 'connect');
    socket.write(
      `POST /webhooks HTTP/1.1\r\nHost: x\r\nContent-Length: ${body.length}\r\n` +
        `X-GCS-KeyId: key-new\r\nX-GCS-Signature: ${hmac(body, 'new:secret==')}\r\n\r\n`,
    );
    socket.write(body.subarray(0, 40));
    await new Promise((resolve) => setTimeout(resolve, 50));
    socket.destroy();
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(await jobCount()).toBe(0);
    expect((await deliver(web.url, body)).status).toBe(200);
  });

  it('answers the handshake GET without its header with 400', async () => {
    const res = await fetch(`${web.url}/webhooks`);
    expect(res.status).toBe(400);
  });
});

describe('slows down an address that keeps failing verification', () => {
  beforeEach(async () => {
    web = await buildWeb({ failureLimit: 3 });
  });

  it('answers 429 with Retry-After after the limit, before checking the signature', async () => {
    const body = bodyOf(paymentEvent({ eventId: 'evt-th' }));
    for (let i = 0; i < 3; i++) expect((await deliver(web.url, body, { signature: 'bad' })).status).toBe(401);
    const throttled = await deliver(web.url, body);
    expect(throttled.status).toBe(429);
    expect(Number(throttled.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(await jobCount()).toBe(0);
  });

  it('never throttles an address whose valid deliveries keep arriving between failures', async () => {
    for (let i = 0; i < 6; i++) {
      expect(
        (await deliver(web.url, bodyOf(paymentEvent({ eventId: `x${i}` })), { signature: 'bad' })).status,
      ).toBe(401);
      expect((await deliver(web.url, bodyOf(paymentEvent({ eventId: `ok${i}` })))).status).toBe(200);
    }
  });
});

describe('behind a proxy (TRUST_PROXY)', () => {
  const failFrom = (client: string) =>
    deliver(web.url, bodyOf(paymentEvent({ eventId: 'evt-px' })), {
      signature: 'bad',
      headers: { 'x-forwarded-for': client },
    });

  it('with one hop trusted, throttles the forwarded client, not the proxy that all clients share', async () => {
    web = await buildWeb({ failureLimit: 2, trustProxy: '1' });
    for (let i = 0; i < 2; i++) expect((await failFrom('203.0.113.7')).status).toBe(401);
    expect((await failFrom('203.0.113.7')).status).toBe(429);
    expect((await failFrom('198.51.100.9')).status).toBe(401);
  });

  it('unset, ignores X-Forwarded-For, so a client cannot dodge the throttle by forging it', async () => {
    web = await buildWeb({ failureLimit: 2 });
    expect((await failFrom('203.0.113.1')).status).toBe(401);
    expect((await failFrom('203.0.113.2')).status).toBe(401);
    expect((await failFrom('203.0.113.3')).status).toBe(429);
  });
});

describe('when Redis is down', () => {
  let redis: RedisServer;

  beforeEach(async () => {
    redis = await RedisServer.start();
    web = await buildWeb({ redisUrl: redis.url });
  });

  afterEach(async () => {
    await redis.stop();
  });

  it('answers 503 with Retry-After, then 2xx once Redis is back', async () => {
    const body = bodyOf(paymentEvent({ eventId: 'evt-down' }));
    await redis.stopProcess();
    const down = await deliver(web.url, body);
    expect(down.status).toBe(503);
    expect(down.headers.get('retry-after')).toBeTruthy();
    expect(((await down.json()) as { error: string }).error).toBe('queue_unavailable');
    const ready = await fetch(`${web.url}/readyz`);
    expect(ready.status).toBe(503);

    await redis.startProcess();
    await waitFor(async () => (await deliver(web.url, body)).status === 200);
    expect(await web.queue.getJob('evt-down')).toBeDefined();
  });

  it('answers 503 when Redis does not acknowledge within the bounded wait', async () => {
    await web.close();
    web = await buildWeb({ redisUrl: redis.url, enqueueTimeoutMs: 200 });
    const admin = new Redis(redis.url);
    try {
      await admin.call('CLIENT', 'PAUSE', '1500', 'WRITE');
      const res = await deliver(web.url, bodyOf(paymentEvent({ eventId: 'evt-slow' })));
      expect(res.status).toBe(503);
      expect(res.headers.get('retry-after')).toBeTruthy();
    } finally {
      await admin.call('CLIENT', 'UNPAUSE');
      admin.disconnect();
    }
  });
});

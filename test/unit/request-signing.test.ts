import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { init } from 'onlinepayments-sdk-nodejs';
import {
  signServerRequest,
  stringToSign,
  type ServerRequestToSign,
} from '../../src/platform/request-signing';

interface ApiAuthVector {
  source: string;
  apiKeyId?: string;
  secret: string;
  stringToSign: string;
  signature?: string;
  authorization?: string;
}

const vectors = JSON.parse(readFileSync(join(__dirname, '../fixtures/vectors.json'), 'utf8')) as {
  apiAuth: ApiAuthVector[];
};

function hmacBase64(text: string, secret: string): string {
  return createHmac('sha256', secret).update(text, 'utf8').digest('base64');
}

/** The Authorization value a vector promises, read from the vector file alone. */
function expectedAuthorization(vector: ApiAuthVector): { apiKeyId: string; authorization: string } {
  if (vector.authorization !== undefined) {
    const apiKeyId = vector.authorization.split(':')[1] ?? '';
    return { apiKeyId, authorization: vector.authorization };
  }
  const apiKeyId = vector.apiKeyId ?? 'vectorKeyId';
  return { apiKeyId, authorization: `GCS v1HMAC:${apiKeyId}:${vector.signature ?? ''}` };
}

/**
 * Rebuilds a request from a vector's string-to-sign, but in the raw form a caller hands over: GETs carry a
 * Content-Type header anyway, X-GCS names arrive in mixed case and reverse order with folded line breaks and
 * padding in their values, and unrelated headers ride along.
 */
function requestFromVector(text: string): ServerRequestToSign {
  const lines = text.split('\n');
  expect(lines.pop()).toBe('');
  const [method = '', contentType = '', date = '', ...rest] = lines;
  const pathAndQuery = rest.pop() ?? '';
  const headers: Record<string, string> = { 'User-Agent': 'jest', Date: date, 'Content-Type': 'text/plain' };
  for (const line of [...rest].reverse()) {
    const colon = line.indexOf(':');
    const name = line
      .slice(0, colon)
      .replace(/(^|-)([a-z])/g, (_m, dash: string, c: string) => dash + c.toUpperCase());
    const value = line.slice(colon + 1).replace(/ /g, '\r\n   ');
    headers[name] = `  ${value}\t`;
  }
  return {
    method: method.toLowerCase(),
    contentType: contentType === '' ? 'application/json' : contentType,
    date,
    xGcsHeaders: headers,
    pathAndQuery,
  };
}

describe('apiAuth vectors', () => {
  it.each(vectors.apiAuth.map((vector) => [vector.source, vector] as const))(
    'reproduces %s',
    (_source, vector) => {
      const { apiKeyId, authorization } = expectedAuthorization(vector);
      // The vector file is self-consistent before it judges our code.
      expect(`GCS v1HMAC:${apiKeyId}:${hmacBase64(vector.stringToSign, vector.secret)}`).toBe(authorization);

      const request = requestFromVector(vector.stringToSign);
      expect(stringToSign(request)).toBe(vector.stringToSign);
      expect(signServerRequest(request, apiKeyId, vector.secret)).toBe(authorization);
    },
  );

  it('signs the content type of a POST but not of a GET', () => {
    const base = {
      date: 'Fri, 06 Jun 2014 13:39:43 GMT',
      pathAndQuery: '/v2/1/x?a=b',
      contentType: 'application/json',
    };
    expect(stringToSign({ ...base, method: 'POST' })).toBe(
      'POST\napplication/json\nFri, 06 Jun 2014 13:39:43 GMT\n/v2/1/x?a=b\n',
    );
    expect(stringToSign({ ...base, method: 'GET' })).toBe(
      'GET\n\nFri, 06 Jun 2014 13:39:43 GMT\n/v2/1/x?a=b\n',
    );
  });
});

interface CapturedRequest {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: string;
}

/** A loopback server that records what the real SDK sends and answers 200 `{}`. */
async function startCapture(): Promise<{ server: Server; port: number; captured: CapturedRequest[] }> {
  const captured: CapturedRequest[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (body += chunk));
    req.on('end', () => {
      captured.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as AddressInfo).port, captured };
}

function ourAuthorizationFor(request: CapturedRequest, apiKeyId: string, secret: string): string {
  return signServerRequest(
    {
      method: request.method,
      contentType: request.headers['content-type'],
      date: request.headers.date ?? '',
      xGcsHeaders: request.headers,
      pathAndQuery: request.url,
    },
    apiKeyId,
    secret,
  );
}

describe('agrees with onlinepayments-sdk-nodejs on a request it really sends', () => {
  const apiKeyId = 'KEYID';
  const secretApiKey = 'I42Zf4pVnRdroHfuHnRiJjJ2B6+22h0yQt/R3nZR8Xg=';
  let capture: Awaited<ReturnType<typeof startCapture>>;

  beforeEach(async () => {
    capture = await startCapture();
  });

  afterEach(async () => {
    await new Promise<void>((resolve) => capture.server.close(() => resolve()));
  });

  function sdkClient() {
    return init({
      host: '127.0.0.1',
      port: capture.port,
      scheme: 'http',
      apiKeyId,
      secretApiKey,
      integrator: 'paystate-test',
    });
  }

  it('signs getPaymentDetails identically', async () => {
    const response = await sdkClient().payments.getPaymentDetails('MyPSPID', '3254564310_0');
    expect(response.status).toBe(200);

    const [request] = capture.captured;
    if (request === undefined) throw new Error('the SDK sent nothing');
    expect(request.method).toBe('GET');
    expect(request.url).toBe('/v2/MyPSPID/payments/3254564310_0/details');
    // The SDK sends a Content-Type on GET and an X-GCS-ServerMetaInfo header; both must be handled as it does.
    expect(request.headers['content-type']).toBe('application/json');
    expect(request.headers['x-gcs-servermetainfo']).toBeDefined();
    expect(request.headers.authorization).toMatch(/^GCS v1HMAC:KEYID:[A-Za-z0-9+/]{43}=$/);
    expect(ourAuthorizationFor(request, apiKeyId, secretApiKey)).toBe(request.headers.authorization);
  });

  it('signs a POST with two X-GCS headers identically', async () => {
    const response = await sdkClient().webhooks.validateWebhookCredentials(
      'MyPSPID',
      { key: 'webhook-key', secret: 'webhook-secret' },
      { idempotence: { key: 'idem-123' } },
    );
    expect(response.status).toBe(200);

    const [request] = capture.captured;
    if (request === undefined) throw new Error('the SDK sent nothing');
    expect(request.method).toBe('POST');
    expect(request.headers['x-gcs-idempotence-key']).toBe('idem-123');
    expect(ourAuthorizationFor(request, apiKeyId, secretApiKey)).toBe(request.headers.authorization);
  });
});

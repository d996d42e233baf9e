import { createHash, randomUUID, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../log';
import { signServerRequest } from '../platform/request-signing';
import type { KeyRing } from '../platform';
import {
  addSimulatedRefund,
  buildSimulatedPayment,
  type CreatePaymentInput,
  type RefundInput,
  type SimulatedPayment,
} from './simulated-payments';
import { sendWebhook, type SendWebhookOptions } from './webhook-sender';

export interface PlatformSimulatorOptions {
  merchantId: string;
  apiKeyId: string;
  apiSecret: string;
  /** 0 picks a free port. @defaultValue 0 */
  port?: number;
  /** @defaultValue '127.0.0.1' */
  host?: string;
  /** Webhook keys that `POST /v2/{merchantId}/webhooks/validateCredentials` accepts. @defaultValue none */
  webhookKeys?: KeyRing;
  /** How far the `Date` header may be from the simulator's clock. @defaultValue 15 minutes */
  maxClockSkewMs?: number;
  log?: Logger;
}

/** One API request as the simulator saw it. `status` is 0 while unanswered, and stays 0 if the client left first. */
export interface SimulatedRequest {
  method: string;
  /** Path without the query, as received (still percent-encoded). */
  path: string;
  status: number;
  /** Arrival time, epoch ms. */
  at: number;
}

export type SimulatedFailureStatus = 429 | 500 | 503;

export interface PlatformSimulator {
  /** `http://host:port`, to pass as the platform client's `url`. */
  readonly url: string;
  /** Stores a full GetPaymentDetails body (incl. `Operations`); it is answered verbatim. */
  setPayment(paymentId: string, details: object): void;
  /** Builds and stores a Direct-shaped payment honouring the platform's test amounts; returns the body. */
  createPayment(input: CreatePaymentInput): SimulatedPayment;
  /** Adds a refund made on the platform side (test amounts 1303 and 1203 refuse / leave it uncertain). */
  refundPayment(paymentId: string, input?: RefundInput): SimulatedPayment;
  /** Changes a stored payment in place, or replaces it with what `mutate` returns. Throws for an unknown id. */
  updatePayment(
    paymentId: string,
    mutate: (details: SimulatedPayment) => SimulatedPayment | void,
  ): SimulatedPayment;
  getPayment(paymentId: string): SimulatedPayment | undefined;
  /** The next `count` API requests get `status` with the platform's error body, before any other check. */
  failNext(count: number, status: SimulatedFailureStatus): void;
  /** The next `count` API requests are answered `ms` later (unless the client gives up first). */
  delayNext(count: number, ms: number): void;
  /** Every API request so far, oldest first (a live list). */
  readonly requests: readonly SimulatedRequest[];
  /** GetPaymentDetails requests for `paymentId` so far, whatever they were answered. */
  detailsCalls(paymentId: string): number;
  /** Connections currently open to the simulator. */
  connectionCount(): Promise<number>;
  sendWebhook(targetUrl: string, event: unknown, options: SendWebhookOptions): Promise<number[]>;
  close(): Promise<void>;
}

const DETAILS_PATH = /^\/v2\/([^/]+)\/payments\/([^/]+)\/details$/;
const API_PATH = /^\/v2\/([^/]+)\/(.+)$/;

/** Illustrative values in the platform's error shape; the shape is what clients depend on. */
const ERRORS: Record<number, { errorCode: string; id: string; category: string }> = {
  400: { errorCode: '1099', id: 'INVALID_REQUEST', category: 'DIRECT_PLATFORM_ERROR' },
  401: { errorCode: '9002', id: 'MISSING_OR_INVALID_AUTHORIZATION', category: 'DIRECT_PLATFORM_ERROR' },
  403: { errorCode: '9007', id: 'ACCESS_TO_MERCHANT_NOT_ALLOWED', category: 'DIRECT_PLATFORM_ERROR' },
  404: { errorCode: '1002', id: 'UNKNOWN_PAYMENT_ID', category: 'DIRECT_PLATFORM_ERROR' },
  429: { errorCode: '9429', id: 'TOO_MANY_REQUESTS', category: 'DIRECT_PLATFORM_ERROR' },
  500: { errorCode: '9999', id: 'UNKNOWN_SERVER_ERROR', category: 'DIRECT_PLATFORM_ERROR' },
  503: { errorCode: '9503', id: 'SERVICE_UNAVAILABLE', category: 'IO_ERROR' },
};

export function platformErrorBody(status: number, message: string): object {
  const known = ERRORS[status] ?? {
    errorCode: String(status),
    id: 'ERROR',
    category: 'DIRECT_PLATFORM_ERROR',
  };
  return { errorId: randomUUID(), errors: [{ ...known, httpStatusCode: status, message }] };
}

const sha256 = (text: string) => createHash('sha256').update(text).digest();

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (text += chunk));
    req.on('end', () => resolve(text));
    req.on('error', reject);
  });
}

/** Resolves true after `ms`, or false as soon as the client closes the connection. */
function pause(ms: number, res: ServerResponse): Promise<boolean> {
  return new Promise((resolve) => {
    const onClose = () => {
      clearTimeout(timer);
      resolve(false);
    };
    const timer = setTimeout(() => {
      res.off('close', onClose);
      resolve(true);
    }, ms);
    res.once('close', onClose);
  });
}

/** Starts an HTTP server that plays the platform's Server API for tests, benchmarks and the demo. */
export async function startPlatformSimulator(options: PlatformSimulatorOptions): Promise<PlatformSimulator> {
  const { merchantId, apiKeyId, apiSecret, log } = options;
  const maxSkewMs = options.maxClockSkewMs ?? 15 * 60_000;
  const payments = new Map<string, SimulatedPayment>();
  const requests: SimulatedRequest[] = [];
  const failures: SimulatedFailureStatus[] = [];
  const delays: number[] = [];

  /** Why the request's v1HMAC signature or Date is not acceptable, or undefined when it is. */
  function authProblem(req: IncomingMessage): string | undefined {
    const authorization = req.headers.authorization ?? '';
    const match = /^GCS v1HMAC:([^:]+):(\S+)$/.exec(authorization);
    if (!match) return 'missing or malformed Authorization header';
    if (match[1] !== apiKeyId) return 'unknown API key id';
    const date = req.headers.date;
    const sentAt = date === undefined ? NaN : Date.parse(date);
    if (Number.isNaN(sentAt)) return 'missing or unreadable Date header';
    if (Math.abs(Date.now() - sentAt) > maxSkewMs) return 'Date header too far from the platform clock';
    const expected = signServerRequest(
      {
        method: req.method ?? '',
        contentType: req.headers['content-type'],
        date: date ?? '',
        xGcsHeaders: req.headers,
        pathAndQuery: req.url ?? '',
      },
      apiKeyId,
      apiSecret,
    );
    return timingSafeEqual(sha256(expected), sha256(authorization)) ? undefined : 'signature does not match';
  }

  function route(req: IncomingMessage, path: string, body: string): [number, object] {
    const api = API_PATH.exec(path);
    if (api && decodeURIComponent(api[1] ?? '') !== merchantId) {
      return [403, platformErrorBody(403, 'this API key may not act for that merchant')];
    }
    const details = DETAILS_PATH.exec(path);
    if (req.method === 'GET' && details) {
      const payment = payments.get(decodeURIComponent(details[2] ?? ''));
      return payment ? [200, payment] : [404, platformErrorBody(404, 'unknown payment id')];
    }
    if (req.method === 'GET' && api?.[2] === 'services/testconnection') return [200, { result: 'OK' }];
    if (req.method === 'POST' && api?.[2] === 'webhooks/validateCredentials') {
      let credentials: { key?: unknown; secret?: unknown };
      try {
        credentials = JSON.parse(body) as { key?: unknown; secret?: unknown };
      } catch {
        return [400, platformErrorBody(400, 'body is not JSON')];
      }
      const secret =
        typeof credentials.key === 'string' ? options.webhookKeys?.get(credentials.key) : undefined;
      return [200, { result: secret !== undefined && secret === credentials.secret ? 'VALID' : 'INVALID' }];
    }
    return [404, platformErrorBody(404, 'no such resource')];
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    const entry: SimulatedRequest = { method: req.method ?? '', path, status: 0, at: Date.now() };
    requests.push(entry);
    const body = await readBody(req);
    const delayMs = delays.shift();
    if (delayMs !== undefined && !(await pause(delayMs, res))) {
      log?.debug('simulator client left before the answer', { method: entry.method, path });
      return;
    }
    const forced = failures.shift();
    const problem = forced === undefined ? authProblem(req) : undefined;
    const [status, answer]: [number, object] =
      forced !== undefined
        ? [forced, platformErrorBody(forced, 'simulated failure')]
        : problem !== undefined
          ? [401, platformErrorBody(401, problem)]
          : route(req, path, body);
    entry.status = status;
    log?.debug('simulator answered', { method: entry.method, path, status });
    res.writeHead(status, { 'Content-Type': 'application/json' }).end(JSON.stringify(answer));
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      log?.error('simulator request failed', { error });
      if (!res.headersSent) res.writeHead(500).end();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => resolve());
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;

  function stored(paymentId: string): SimulatedPayment {
    const payment = payments.get(paymentId);
    if (payment === undefined) throw new Error(`the simulator holds no payment ${paymentId}`);
    return payment;
  }

  return {
    url: `http://${host}:${address.port}`,
    setPayment: (paymentId, details) =>
      void payments.set(paymentId, structuredClone(details) as SimulatedPayment),
    createPayment(input) {
      const payment = buildSimulatedPayment(input);
      payments.set(input.paymentId, payment);
      return structuredClone(payment);
    },
    refundPayment: (paymentId, input) => structuredClone(addSimulatedRefund(stored(paymentId), input)),
    updatePayment(paymentId, mutate) {
      const payment = stored(paymentId);
      const replaced = mutate(payment);
      if (replaced) payments.set(paymentId, replaced);
      return structuredClone(replaced ?? payment);
    },
    getPayment: (paymentId) => structuredClone(payments.get(paymentId)),
    failNext: (count, status) => failures.push(...Array<SimulatedFailureStatus>(count).fill(status)),
    delayNext: (count, ms) => delays.push(...Array<number>(count).fill(ms)),
    requests,
    detailsCalls: (paymentId) =>
      requests.filter((request) => {
        const match = DETAILS_PATH.exec(request.path);
        return request.method === 'GET' && match && decodeURIComponent(match[2] ?? '') === paymentId;
      }).length,
    connectionCount: () =>
      new Promise((resolve, reject) =>
        server.getConnections((error, count) => (error ? reject(error) : resolve(count))),
      ),
    sendWebhook,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((error) => (error ? reject(error) : resolve()));
        server.closeAllConnections();
      }),
  };
}

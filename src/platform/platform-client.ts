/**
 * Server API client for the two calls paystate makes: GetPaymentDetails and the credentials probe.
 *
 * Why node:http and not the official SDK: `onlinepayments-sdk-nodejs` 6.2.0 has no request timeout (no timeout
 * option, no AbortSignal, nothing in its request path listens for one) and hands node:http nothing per call but
 * a shared `agent`. A deadline wrapped around an SDK call could only stop waiting while the socket stays open,
 * or destroy a whole agent per call and give up keep-alive; and an answer that stalls after its headers leaves
 * the SDK's promise pending for ever. The reconciler needs every call to end on time and free its socket, so the
 * call goes through node:http(s): one keep-alive agent, one deadline per attempt covering connect, headers and
 * body, and `req.destroy()` when it passes, which closes that socket. What we keep from the SDK is its behaviour
 * on the wire: the same headers (`Date`, `Content-Type: application/json` even on GET, `X-GCS-ServerMetaInfo` as
 * base64 JSON, here naming paystate and the integrator) signed with v1HMAC by `signServerRequest`, which the
 * tests hold byte for byte to the public vectors, to requests the real SDK sends and to the SDK's own
 * authenticator. Every header the signature can cover is signed.
 */
import http from 'node:http';
import https from 'node:https';
import type { Logger } from '../log';
import { signServerRequest } from './request-signing';

export interface PlatformClientOptions {
  /** Scheme, host and port of the Server API, nothing else. @defaultValue `https://payment.preprod.payone.com` */
  url?: string;
  merchantId: string;
  apiKeyId: string;
  apiSecret: string;
  /** Deadline for one attempt: connect, answer headers and body. @defaultValue 10000 */
  timeoutMs?: number;
  /** At most this many attempts start in any one-second window, across all calls of the client. @defaultValue 10 */
  maxRps?: number;
  /** Further attempts after a 429, a 5xx, a network error or a timeout. @defaultValue 4 */
  retries?: number;
  /**
   * Backoff before retry n (from 0) is a random delay up to `backoffBaseMs * 2^n` (full jitter), at most 30 s;
   * a `Retry-After` in seconds is waited out, up to the same 30 s. @defaultValue 500
   */
  backoffBaseMs?: number;
  log: Logger;
  /** Named in `X-GCS-ServerMetaInfo`, as the SDK's `integrator`. @defaultValue 'paystate' */
  integrator?: string;
}

export type PaymentDetailsResult = { kind: 'found'; body: unknown } | { kind: 'not_found'; errorId?: string };

export type ConnectionProbe =
  | { ok: true }
  | { ok: false; reason: 'authentication' | 'unreachable' | 'error'; status?: number; message: string };

export interface PlatformClient {
  getPaymentDetails(paymentId: string): Promise<PaymentDetailsResult>;
  /** One attempt, no retries: a probe reports the moment. Never throws. */
  testConnection(): Promise<ConnectionProbe>;
  /** Closes idle keep-alive sockets. */
  close(): void;
}

export type PlatformErrorReason =
  | 'authentication'
  | 'rejected'
  | 'rate_limited'
  | 'server_error'
  | 'timeout'
  | 'network'
  | 'invalid_response';

/** A platform call that failed for good (`retryable` false) or for now, after every retry (`retryable` true). */
export class PlatformError extends Error {
  override readonly name = 'PlatformError';
  readonly reason: PlatformErrorReason;
  readonly status: number | undefined;
  readonly retryable: boolean;
  /** The platform's `errorId`, for its support desk. */
  readonly errorId: string | undefined;

  constructor(
    reason: PlatformErrorReason,
    message: string,
    details: { status?: number; retryable: boolean; errorId?: string; cause?: unknown },
  ) {
    super(message, { cause: details.cause });
    this.reason = reason;
    this.status = details.status;
    this.retryable = details.retryable;
    this.errorId = details.errorId;
  }
}

const MAX_BACKOFF_MS = 30_000;

class AttemptTimeout extends Error {
  override readonly name = 'AttemptTimeout';
  constructor(timeoutMs: number, cause: Error) {
    super(`no complete answer within ${timeoutMs} ms`, { cause });
  }
}

interface Answer {
  status: number;
  text: string;
  retryAfterMs: number | undefined;
}

interface Failure {
  reason: PlatformErrorReason;
  status?: number;
  detail: string;
  cause?: unknown;
  retryAfterMs?: number | undefined;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

/** `errorId` and the first error's `id` from the platform's error shape, when the body has it. */
function platformErrorInfo(text: string): { errorId?: string; label: string } {
  const body = parseJson(text) as { errorId?: unknown; errors?: Array<{ id?: unknown }> } | undefined;
  const errorId = typeof body?.errorId === 'string' ? body.errorId : undefined;
  const id = body?.errors?.[0]?.id;
  const label = [typeof id === 'string' ? id : undefined, errorId && `errorId ${errorId}`]
    .filter(Boolean)
    .join(', ');
  return { ...(errorId !== undefined && { errorId }), label: label === '' ? '' : ` (${label})` };
}

function parseRetryAfter(header: string | undefined): number | undefined {
  const seconds = header === undefined ? NaN : Number(header);
  return Number.isFinite(seconds) && seconds >= 0 ? seconds * 1000 : undefined;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Sliding one-second window: a start waits until fewer than `maxPerSecond` starts lie in the second before it. */
function createStartLimiter(maxPerSecond: number): () => Promise<void> {
  const starts: number[] = [];
  return async () => {
    const now = Date.now();
    while (starts.length > 0 && (starts[0] ?? 0) <= now - 1000) starts.shift();
    const last = starts[starts.length - 1] ?? now;
    const windowFull =
      starts.length >= maxPerSecond ? (starts[starts.length - maxPerSecond] ?? 0) + 1000 : now;
    const at = Math.max(now, last, windowFull);
    starts.push(at);
    if (at > now) await sleep(at - now);
  };
}

function parseBaseUrl(text: string): URL {
  const url = new URL(text);
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new Error(`platform URL must use http or https, not ${url.protocol}`);
  }
  if (url.username || url.password || url.search || url.hash || url.pathname !== '/') {
    throw new Error(
      'platform URL must be scheme://host[:port] only, such as https://payment.preprod.payone.com',
    );
  }
  return url;
}

export function createPlatformClient(options: PlatformClientOptions): PlatformClient {
  const base = parseBaseUrl(options.url ?? 'https://payment.preprod.payone.com');
  const { merchantId, apiKeyId, apiSecret, log } = options;
  const timeoutMs = options.timeoutMs ?? 10_000;
  const maxRps = options.maxRps ?? 10;
  const retries = options.retries ?? 4;
  const backoffBaseMs = options.backoffBaseMs ?? 500;
  if (!(timeoutMs > 0 && maxRps > 0 && Number.isInteger(retries) && retries >= 0 && backoffBaseMs >= 0)) {
    throw new Error(
      'platform client needs timeoutMs > 0, maxRps > 0, a whole retries >= 0 and backoffBaseMs >= 0',
    );
  }
  const limit = createStartLimiter(maxRps);
  const transport = base.protocol === 'https:' ? https : http;
  const agent = new transport.Agent({ keepAlive: true, timeout: 30_000 });
  const serverMetaInfo = Buffer.from(
    JSON.stringify({
      sdkCreator: 'paystate',
      sdkIdentifier: 'paystate',
      platformIdentifier: `${process.platform} Node.js/${process.versions.node}`,
      integrator: options.integrator ?? 'paystate',
    }),
  ).toString('base64');
  const merchantPath = `/v2/${encodeURIComponent(merchantId)}`;

  /** One attempt. Rejects on a network error, or when the deadline passes, after destroying the socket. */
  function exchange(path: string): Promise<Answer> {
    const headers: Record<string, string> = {
      Date: new Date().toUTCString(),
      'Content-Type': 'application/json',
      'X-GCS-ServerMetaInfo': serverMetaInfo,
    };
    headers.Authorization = signServerRequest(
      {
        method: 'GET',
        contentType: headers['Content-Type'],
        date: headers.Date ?? '',
        xGcsHeaders: headers,
        pathAndQuery: path,
      },
      apiKeyId,
      apiSecret,
    );
    return new Promise<Answer>((resolve, reject) => {
      const req = transport.request({
        protocol: base.protocol,
        hostname: base.hostname.replace(/^\[|\]$/g, ''),
        port: base.port || undefined,
        path,
        method: 'GET',
        headers,
        agent,
      });
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        req.destroy();
      }, timeoutMs);
      const fail = (error: Error) => {
        clearTimeout(timer);
        reject(timedOut ? new AttemptTimeout(timeoutMs, error) : error);
      };
      req.on('error', fail);
      req.on('response', (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        // A socket closed mid-body (our deadline or the peer) ends here, since an 'error' listener exists.
        res.on('error', fail);
        res.on('end', () => {
          clearTimeout(timer);
          const retryAfter = res.headers['retry-after'];
          resolve({
            status: res.statusCode ?? 0,
            text: Buffer.concat(chunks).toString('utf8'),
            retryAfterMs: parseRetryAfter(typeof retryAfter === 'string' ? retryAfter : undefined),
          });
        });
      });
      req.end();
    });
  }

  /** Why a complete answer deserves another attempt (429, 5xx), or undefined when it is final. */
  function retryableAnswer({ status, retryAfterMs }: Answer): Failure | undefined {
    if (status === 429) return { reason: 'rate_limited', status, detail: 'answered 429', retryAfterMs };
    if (status >= 500) return { reason: 'server_error', status, detail: `answered ${status}`, retryAfterMs };
    return undefined;
  }

  /** Attempts `path` until an answer is final (anything but 429 and 5xx) or `attempts` run out. */
  async function call(path: string, attempts: number): Promise<Answer> {
    for (let attempt = 1; ; attempt++) {
      await limit();
      let failure: Failure | undefined;
      try {
        const answer = await exchange(path);
        failure = retryableAnswer(answer);
        log.debug('platform call answered', { path, status: answer.status, attempt });
        if (failure === undefined) return answer;
      } catch (error) {
        failure =
          error instanceof AttemptTimeout
            ? { reason: 'timeout', detail: error.message, cause: error.cause }
            : { reason: 'network', detail: `network error (${(error as Error).message})`, cause: error };
      }
      if (attempt >= attempts) {
        throw new PlatformError(
          failure.reason,
          `platform call GET ${path} failed ${attempt} time(s), last: ${failure.detail}; the platform is ` +
            'unreachable, overloaded or failing, try again later',
          { status: failure.status, retryable: true, cause: failure.cause },
        );
      }
      const ceiling = Math.min(MAX_BACKOFF_MS, backoffBaseMs * 2 ** (attempt - 1));
      const delayMs = Math.min(MAX_BACKOFF_MS, Math.max(Math.random() * ceiling, failure.retryAfterMs ?? 0));
      const { reason, status } = failure;
      log.warn('platform call failed, retrying', {
        path,
        attempt,
        reason,
        status,
        delayMs: Math.round(delayMs),
      });
      await sleep(delayMs);
    }
  }

  function finalError(path: string, answer: Answer): PlatformError {
    const { errorId, label } = platformErrorInfo(answer.text);
    if (answer.status === 401 || answer.status === 403) {
      return new PlatformError(
        'authentication',
        `platform refused GET ${path} with ${answer.status}${label}: check PLATFORM_API_KEY_ID, PLATFORM_API_SECRET, ` +
          'PLATFORM_MERCHANT_ID and that this host clock is right',
        { status: answer.status, retryable: false, ...(errorId !== undefined && { errorId }) },
      );
    }
    return new PlatformError('rejected', `platform rejected GET ${path} with ${answer.status}${label}`, {
      status: answer.status,
      retryable: false,
      ...(errorId !== undefined && { errorId }),
    });
  }

  return {
    async getPaymentDetails(paymentId) {
      const path = `${merchantPath}/payments/${encodeURIComponent(paymentId)}/details`;
      const answer = await call(path, retries + 1);
      if (answer.status === 404) {
        const { errorId } = platformErrorInfo(answer.text);
        return { kind: 'not_found', ...(errorId !== undefined && { errorId }) };
      }
      if (answer.status < 200 || answer.status >= 300) throw finalError(path, answer);
      const body = parseJson(answer.text);
      if (body === undefined) {
        throw new PlatformError(
          'invalid_response',
          `platform answered GET ${path} with a body that is not JSON`,
          {
            status: answer.status,
            retryable: false,
          },
        );
      }
      return { kind: 'found', body };
    },

    async testConnection() {
      const path = `${merchantPath}/services/testconnection`;
      try {
        const answer = await call(path, 1);
        if (answer.status >= 200 && answer.status < 300) return { ok: true };
        const error = finalError(path, answer);
        const reason = error.reason === 'authentication' ? 'authentication' : 'error';
        return { ok: false, reason, status: answer.status, message: error.message };
      } catch (caught) {
        if (!(caught instanceof PlatformError)) throw caught;
        const unreachable = caught.reason === 'timeout' || caught.reason === 'network';
        return {
          ok: false,
          reason: unreachable ? 'unreachable' : 'error',
          ...(caught.status !== undefined && { status: caught.status }),
          message: caught.message,
        };
      }
    },

    close() {
      agent.destroy();
    },
  };
}

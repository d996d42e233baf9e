import http from 'node:http';
import https from 'node:https';
import { signWebhookBody } from '../platform';

export interface SendWebhookOptions {
  /** Sent as `X-GCS-KeyId`. */
  keyId: string;
  /** Webhook secret the body is signed with (UTF-8 text, as the platform uses it). */
  secret: string;
  /** Send nothing at all, as when a delivery is lost. @defaultValue false */
  drop?: boolean;
  /** Deliver the same bytes again: `true` once more, a number that many more times. @defaultValue false */
  duplicate?: boolean | number;
  /** Wait this long before the first delivery (several sends with different delays reorder). @defaultValue 0 */
  delayMs?: number;
  /**
   * Re-deliver whatever is not answered 2xx, as the platform does: at most `attempts` deliveries of each copy in
   * all (the first one included), `delayMs` apart. Without it every copy is delivered once.
   */
  retry?: { attempts: number; delayMs: number };
  /** Per delivery; a delivery that takes longer counts as status 0. @defaultValue 10000 */
  timeoutMs?: number;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** One POST on a fresh connection; resolves the answer's status, or 0 for a network error or timeout. */
function deliver(
  target: URL,
  body: Buffer,
  headers: Record<string, string>,
  timeoutMs: number,
): Promise<number> {
  const transport = target.protocol === 'https:' ? https : http;
  return new Promise<number>((resolve) => {
    const req = transport.request(target, { method: 'POST', headers, agent: false });
    const timer = setTimeout(() => req.destroy(), timeoutMs);
    req.on('error', () => {
      clearTimeout(timer);
      resolve(0);
    });
    req.on('response', (res) => {
      res.resume();
      res.on('error', () => {
        clearTimeout(timer);
        resolve(0);
      });
      res.on('end', () => {
        clearTimeout(timer);
        resolve(res.statusCode ?? 0);
      });
    });
    req.end(body);
  });
}

/**
 * Delivers `event` to `targetUrl` the way the platform does: POST, JSON, `X-GCS-Signature` = base64 HMAC-SHA256
 * of exactly the bytes sent, `X-GCS-KeyId`. `event` may be an envelope object, an array holding one (the shape
 * the platform's documentation shows), or a string/Buffer sent byte for byte. Resolves the status of every
 * delivery made, in order (0 when no answer came); an empty list when dropped.
 */
export async function sendWebhook(
  targetUrl: string,
  event: unknown,
  options: SendWebhookOptions,
): Promise<number[]> {
  if (options.drop) return [];
  const body = Buffer.isBuffer(event)
    ? event
    : Buffer.from(typeof event === 'string' ? event : JSON.stringify(event), 'utf8');
  const headers = {
    'Content-Type': 'application/json',
    'Content-Length': String(body.length),
    'X-GCS-Signature': signWebhookBody(body, options.secret),
    'X-GCS-KeyId': options.keyId,
  };
  const target = new URL(targetUrl);
  const copies =
    1 + (options.duplicate === true ? 1 : typeof options.duplicate === 'number' ? options.duplicate : 0);
  const attempts = Math.max(1, options.retry?.attempts ?? 1);
  const statuses: number[] = [];
  if (options.delayMs) await sleep(options.delayMs);
  for (let copy = 0; copy < copies; copy++) {
    for (let attempt = 1; attempt <= attempts; attempt++) {
      const status = await deliver(target, body, headers, options.timeoutMs ?? 10_000);
      statuses.push(status);
      if (status >= 200 && status < 300) break;
      if (attempt < attempts && options.retry) await sleep(options.retry.delayMs);
    }
  }
  return statuses;
}

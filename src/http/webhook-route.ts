import type { IncomingMessage, ServerResponse } from 'node:http';
import express, { type Router } from 'express';
import type { Queue } from 'bullmq';
import { parseWebhookBody, type WebhookEvent } from '../../schemas';
import type { Logger } from '../log';
import { SignatureError, verifyWebhookSignature, type KeyRing } from '../platform/webhook-signature';
import { StatusEventEnqueuer, type StatusEventJob } from '../queue';
import type { ClientAddress } from './client-address';
import type { FailureThrottle } from './failure-throttle';
import { sendError, writeJson } from './http-error';
import { BodyReadError, readRawBody } from './read-body';
import type { WebhookMetrics } from './webhook-metrics';

export interface WebhookRouteOptions {
  keyRing: KeyRing;
  maxBodyBytes: number;
  enqueueTimeoutMs: number;
  queue: Queue<StatusEventJob>;
  throttle: FailureThrottle;
  clientAddress: ClientAddress;
  /** Delivery counters; test deliveries (`X-Paystate-Test: 1`) are kept apart by it. */
  metrics: WebhookMetrics;
  log: Logger;
}

export type WebhookReceiver = (req: IncomingMessage, res: ServerResponse) => void;

const VERIFICATION_HEADER = 'x-gcs-webhooks-endpoint-verification';
const utf8 = new TextDecoder('utf-8', { fatal: true });

function paymentIdOf(event: WebhookEvent): string | undefined {
  const payload = (event.payment ?? event.refund) as { id?: unknown } | undefined;
  return typeof payload?.id === 'string' ? payload.id : undefined;
}

function header(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value.join(', ') : value;
}

/**
 * `POST /webhooks` on plain Node request and response objects: deliveries are the hot path, and Express's
 * routing, request decoration and body parser cost more per request than verifying and queueing the event.
 * The server hands this `POST /webhooks` before Express sees it; the router below serves other spellings.
 */
export function createWebhookReceiver(options: WebhookRouteOptions): WebhookReceiver {
  const { keyRing, throttle, metrics, log, clientAddress } = options;
  const enqueuer = new StatusEventEnqueuer(options.queue, options.enqueueTimeoutMs);

  async function receive(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const client = clientAddress(req);
    const retryAfter = throttle.retryAfterSeconds(client);
    if (retryAfter > 0) {
      log.warn('webhook throttled', { client, retryAfter });
      metrics.rejected(req, 'too_many_failed_verifications');
      res.setHeader('Retry-After', String(retryAfter));
      sendError(
        res,
        429,
        'too_many_failed_verifications',
        'too many deliveries failed verification; retry later',
      );
      return;
    }

    let body: Buffer;
    try {
      body = await readRawBody(req, options.maxBodyBytes);
    } catch (error) {
      if (!(error instanceof BodyReadError)) throw error;
      log.warn('webhook refused', { reason: error.code, client });
      metrics.rejected(req, error.code);
      sendError(res, error.status, error.code, error.message);
      return;
    }

    const signature = header(req, 'x-gcs-signature');
    let keyId: string;
    try {
      ({ keyId } = verifyWebhookSignature(body, { signature, keyId: header(req, 'x-gcs-keyid') }, keyRing));
    } catch (error) {
      if (!(error instanceof SignatureError)) throw error;
      throttle.recordFailure(client);
      log.warn('webhook refused', { reason: error.reason, client, bytes: body.length });
      metrics.rejected(req, error.reason);
      sendError(res, 401, error.reason, error.message);
      return;
    }
    throttle.recordSuccess(client);

    let text: string;
    let json: unknown;
    try {
      text = utf8.decode(body);
      json = JSON.parse(text);
    } catch {
      log.warn('webhook refused', { reason: 'invalid_json', keyId, bytes: body.length });
      metrics.rejected(req, 'invalid_json');
      sendError(res, 400, 'invalid_json', 'the signed body is not UTF-8 JSON');
      return;
    }
    const parsed = parseWebhookBody(json);
    if (!parsed.ok) {
      log.warn('webhook refused', { reason: parsed.error, keyId, detail: parsed.message });
      metrics.rejected(req, parsed.error);
      sendError(res, 400, parsed.error, parsed.message);
      return;
    }

    const receivedAt = Date.now();
    const isArray = Array.isArray(json);
    const jobs: StatusEventJob[] = parsed.events.map((event, index) => ({
      eventId: event.id,
      type: event.type,
      keyId,
      signature: signature ?? '',
      rawBody: text,
      rawIndex: isArray ? index : null,
      receivedAt,
    }));
    try {
      await enqueuer.enqueue(jobs);
    } catch (error) {
      log.error('webhook not queued', {
        eventIds: jobs.map((job) => job.eventId),
        error: (error as Error).message,
      });
      metrics.rejected(req, 'queue_unavailable');
      res.setHeader('Retry-After', '30');
      sendError(res, 503, 'queue_unavailable', 'the event could not be queued; deliver it again later');
      return;
    }
    for (const event of parsed.events) {
      log.debug('webhook accepted', {
        eventId: event.id,
        paymentId: paymentIdOf(event),
        type: event.type,
        keyId,
      });
    }
    metrics.accepted(req, jobs.length);
    writeJson(res, 200, { received: jobs.length });
  }

  return (req, res) => {
    receive(req, res).catch((error: Error) => {
      log.error('request failed', { path: req.url, error: error.message, stack: error.stack });
      if (res.headersSent) return void res.destroy();
      sendError(res, 500, 'internal_error', 'the request could not be handled; nothing was accepted');
    });
  };
}

/** The endpoint-verification handshake, and deliveries sent to another spelling of the path (`/Webhooks/`). */
export function createWebhookRouter(receive: WebhookReceiver): Router {
  const router = express.Router();
  router.get('/webhooks', (req, res) => {
    const challenge = req.get(VERIFICATION_HEADER);
    if (challenge === undefined) {
      sendError(
        res,
        400,
        'missing_verification_header',
        `GET /webhooks needs the ${VERIFICATION_HEADER} header`,
      );
      return;
    }
    res.status(200).type('text/plain').send(challenge);
  });
  router.post('/webhooks', (req, res) => receive(req, res));
  return router;
}

/** Whether the request is a delivery the receiver takes before Express: `POST /webhooks`, any query string. */
export function isWebhookDelivery(req: IncomingMessage): boolean {
  const url = req.url ?? '';
  return req.method === 'POST' && url.startsWith('/webhooks') && (url.length === 9 || url[9] === '?');
}

import express, {
  type ErrorRequestHandler,
  type NextFunction,
  type Request,
  type Response,
  type Router,
} from 'express';
import type { Queue } from 'bullmq';
import { parseWebhookBody, type WebhookEvent } from '../../schemas';
import type { Logger } from '../log';
import { SignatureError, verifyWebhookSignature, type KeyRing } from '../platform/webhook-signature';
import { StatusEventEnqueuer, type StatusEventJob } from '../queue';
import type { FailureThrottle } from './failure-throttle';
import { sendError } from './http-error';
import type { WebhookMetrics } from './webhook-metrics';

export interface WebhookRouteOptions {
  keyRing: KeyRing;
  maxBodyBytes: number;
  enqueueTimeoutMs: number;
  queue: Queue<StatusEventJob>;
  throttle: FailureThrottle;
  /** Delivery counters; test deliveries (`X-Paystate-Test: 1`) are kept apart by it. */
  metrics: WebhookMetrics;
  log: Logger;
}

const VERIFICATION_HEADER = 'x-gcs-webhooks-endpoint-verification';
const utf8 = new TextDecoder('utf-8', { fatal: true });

function paymentIdOf(event: WebhookEvent): string | undefined {
  const payload = (event.payment ?? event.refund) as { id?: unknown } | undefined;
  return typeof payload?.id === 'string' ? payload.id : undefined;
}

function clientAddress(req: Request): string {
  return req.ip ?? req.socket.remoteAddress ?? 'unknown';
}

export function createWebhookRouter(options: WebhookRouteOptions): Router {
  const { keyRing, throttle, metrics, log } = options;
  const enqueuer = new StatusEventEnqueuer(options.queue, options.enqueueTimeoutMs);
  const router = express.Router();

  // Endpoint verification handshake: echo the header verbatim as text/plain.
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

  const refuseThrottled = (req: Request, res: Response, next: NextFunction) => {
    const retryAfter = throttle.retryAfterSeconds(clientAddress(req));
    if (retryAfter === 0) return next();
    log.warn('webhook throttled', { client: clientAddress(req), retryAfter });
    metrics.rejected(req, 'too_many_failed_verifications');
    res.set('Retry-After', String(retryAfter));
    sendError(
      res,
      429,
      'too_many_failed_verifications',
      'too many deliveries failed verification; retry later',
    );
  };

  // Raw bytes only: the signature covers the body exactly as sent, so nothing may parse it first.
  const rawBody = express.raw({ type: () => true, limit: options.maxBodyBytes });

  router.post('/webhooks', refuseThrottled, rawBody, async (req, res) => {
    const body: Buffer = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
    const client = clientAddress(req);
    let keyId: string;
    try {
      ({ keyId } = verifyWebhookSignature(
        body,
        { signature: req.get('x-gcs-signature'), keyId: req.get('x-gcs-keyid') },
        keyRing,
      ));
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
    const signature = req.get('x-gcs-signature') ?? '';
    const isArray = Array.isArray(json);
    const jobs: StatusEventJob[] = parsed.events.map((event, index) => ({
      eventId: event.id,
      type: event.type,
      keyId,
      signature,
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
      res.set('Retry-After', '30');
      sendError(res, 503, 'queue_unavailable', 'the event could not be queued; deliver it again later');
      return;
    }
    for (const event of parsed.events) {
      log.info('webhook accepted', {
        eventId: event.id,
        paymentId: paymentIdOf(event),
        type: event.type,
        keyId,
      });
    }
    metrics.accepted(req, jobs.length);
    res.status(200).json({ received: jobs.length });
  });

  // Body-reading failures (too large, aborted) are answered by the app's error handler; count them here.
  const countBodyErrors: ErrorRequestHandler = (error, req, _res, next) => {
    const status = typeof error?.status === 'number' ? error.status : 500;
    const reason = status === 413 ? 'payload_too_large' : status < 500 ? 'bad_request' : 'internal_error';
    metrics.rejected(req, reason);
    next(error);
  };
  router.use('/webhooks', countBodyErrors);

  return router;
}

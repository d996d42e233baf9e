import type { RequestListener } from 'node:http';
import express, { type ErrorRequestHandler } from 'express';
import type { Queue } from 'bullmq';
import { Registry } from 'prom-client';
import { LedgerUnavailableError, type Ledger, type ReleaseOn } from '../ledger';
import type { Logger } from '../log';
import type { KeyRing } from '../platform';
import type { StatusEventJob } from '../queue';
import type { ChangeSignal } from '../queue/change-signal';
import { createAdminBoardRouter } from './admin-board';
import { requireBearerToken } from './bearer-auth';
import { createEventsRouter } from './events-route';
import { FailureThrottle } from './failure-throttle';
import { createHealthRouter, type ReadinessCheck } from './health-route';
import { sendError } from './http-error';
import { createPaymentsRouter } from './payments-route';
import { createChangesRouter } from './changes-route';
import { createMetricsRouter } from './metrics-route';
import { createWebhookMetrics } from './webhook-metrics';
import { createWebhookReceiver, createWebhookRouter, isWebhookDelivery } from './webhook-route';
import { compileTrustProxy, createClientAddress } from './client-address';

export interface AppOptions {
  keyRing: KeyRing;
  maxBodyBytes: number;
  enqueueTimeoutMs: number;
  failureLimit: number;
  failureWindowMs: number;
  apiTokens: readonly string[];
  releaseOn: ReleaseOn;
  defaultFulfilmentDelayMs: number;
  /** TRUST_PROXY (see {@link compileTrustProxy}), so the throttle sees the client's address behind a proxy. */
  trustProxy?: string;
  queue: Queue<StatusEventJob>;
  /**
   * The other queues (payment polls, reconcile sweeps), shown on the board and measured in `/metrics`
   * beside `queue`. @defaultValue []
   */
  adminQueues?: readonly Queue[];
  /**
   * ADMIN_TOKEN: the queue board at `/admin/queues` accepts it as HTTP basic password or bearer token.
   * Without it the board is not mounted (404). @defaultValue undefined
   */
  adminToken?: string;
  ledger: Ledger;
  /** Ledger writers' announcements, so that change-feed long-polls answer at once (see change-signal.ts). */
  changeSignal?: ChangeSignal;
  /** How often a change-feed long-poll re-reads the ledger. @defaultValue 25 ms, 250 ms with `changeSignal` */
  changePollIntervalMs?: number;
  readiness: Record<string, ReadinessCheck>;
  log: Logger;
}

/** Maps body-parser's errors (size, aborted request) and anything unexpected to a JSON answer. */
function errorHandler(log: Logger): ErrorRequestHandler {
  return (error, req, res, _next) => {
    const status = typeof error?.status === 'number' ? error.status : 500;
    if (status === 413) {
      log.warn('request refused', { reason: 'payload_too_large', path: req.path });
      sendError(res, 413, 'payload_too_large', `the body is larger than ${error.limit} bytes`);
      return;
    }
    if (error?.type === 'entity.parse.failed' || error?.type === 'entity.verify.failed') {
      sendError(res, 400, 'invalid_json', 'the body is not valid UTF-8 JSON');
      return;
    }
    if (status >= 400 && status < 500) {
      sendError(res, status, 'bad_request', error.message ?? 'bad request');
      return;
    }
    if (error instanceof LedgerUnavailableError) {
      log.warn('request failed: ledger unavailable', { path: req.path, error: error.message });
      res.set('Retry-After', '5');
      sendError(res, 503, 'ledger_unavailable', 'the ledger cannot be reached; try again shortly');
      return;
    }
    log.error('request failed', { path: req.path, error: error?.message, stack: error?.stack });
    sendError(res, 500, 'internal_error', 'the request could not be handled; nothing was accepted');
  };
}

/**
 * The web process's request handler: `POST /webhooks` goes straight to the receiver, everything else through
 * Express. Serve it with `http.createServer(createApp(options))`.
 */
export function createApp(options: AppOptions): RequestListener {
  const app = express();
  app.disable('x-powered-by');
  // No automatic ETag (a hash of every body, change-feed pages included): GET /v1/payments/:id sets its own.
  app.set('etag', false);
  const trust = compileTrustProxy(options.trustProxy);
  app.set('trust proxy', trust);
  const throttle = new FailureThrottle({ limit: options.failureLimit, windowMs: options.failureWindowMs });
  const registry = new Registry();
  const queues = [options.queue, ...(options.adminQueues ?? [])];
  const receiveWebhook = createWebhookReceiver({
    keyRing: options.keyRing,
    maxBodyBytes: options.maxBodyBytes,
    enqueueTimeoutMs: options.enqueueTimeoutMs,
    queue: options.queue,
    throttle,
    clientAddress: createClientAddress(trust),
    metrics: createWebhookMetrics(registry),
    log: options.log,
  });
  app.use(createWebhookRouter(receiveWebhook));
  app.use(createHealthRouter(options.readiness));
  const { ledger, releaseOn, log } = options;
  app.use(createMetricsRouter({ registry, ledger, queues, log }));
  if (options.adminToken) app.use(createAdminBoardRouter({ token: options.adminToken, queues, ledger, log }));
  app.use('/v1', requireBearerToken(options.apiTokens));
  app.use(
    createPaymentsRouter({
      ledger,
      releaseOn,
      log,
      defaultFulfilmentDelayMs: options.defaultFulfilmentDelayMs,
    }),
  );
  app.use(
    createChangesRouter({
      ledger,
      releaseOn,
      changeSignal: options.changeSignal,
      pollIntervalMs: options.changePollIntervalMs,
    }),
  );
  app.use(createEventsRouter({ ledger }));
  app.use((req, res) => sendError(res, 404, 'not_found', `no route ${req.method} ${req.path}`));
  app.use(errorHandler(options.log));
  return (req, res) => (isWebhookDelivery(req) ? receiveWebhook(req, res) : app(req, res));
}

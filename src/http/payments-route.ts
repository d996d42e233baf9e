import { createHash } from 'node:crypto';
import express, { type Response, type Router } from 'express';
import { zPaymentId, zPaymentsQuery, zRegisterPaymentBody } from '../../schemas';
import type { Ledger, PaymentView, ReleaseOn } from '../ledger';
import type { Logger } from '../log';
import { sendError, sendInvalidRequest } from './http-error';
import { paymentJson, paymentTimeline } from './payment-json';

export interface PaymentsRouteOptions {
  ledger: Ledger;
  releaseOn: ReleaseOn;
  defaultFulfilmentDelayMs: number;
  log: Logger;
}

const viewJson = (payment: PaymentView, releaseOn: ReleaseOn) => ({
  ...paymentJson(payment, releaseOn),
  eventCount: payment.eventCount,
  lastEventAt: payment.lastEventAt === null ? null : new Date(payment.lastEventAt).toISOString(),
});

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/** express.json decodes leniently; a body that is not UTF-8 is refused rather than stored with U+FFFD in it. */
function requireUtf8(_req: unknown, _res: unknown, body: Buffer): void {
  strictUtf8.decode(body);
}

export function createPaymentsRouter(options: PaymentsRouteOptions): Router {
  const { ledger, releaseOn, log } = options;
  const router = express.Router();

  /** Parses :paymentId or answers 400; returns undefined when answered. */
  const paymentIdOf = (raw: string, res: Response): string | undefined => {
    const parsed = zPaymentId.safeParse(raw);
    if (parsed.success) return parsed.data;
    sendError(res, 400, 'invalid_payment_id', `paymentId: ${parsed.error.issues[0]?.message}`);
    return undefined;
  };

  router.post('/v1/payments', express.json({ limit: '16kb', verify: requireUtf8 }), async (req, res) => {
    const body = zRegisterPaymentBody.safeParse(req.body);
    if (!body.success) return sendInvalidRequest(res, body.error);
    const given = body.data.fulfilmentDueAt;
    const result = await ledger.registerPayment({
      ...body.data,
      fulfilmentDueAt: given ? Date.parse(given) : Date.now() + options.defaultFulfilmentDelayMs,
      fulfilmentDueAtGiven: given !== undefined,
    });
    const payment = viewJson(result.payment, releaseOn);
    switch (result.outcome) {
      case 'registered':
        log.info('payment registered', { paymentId: body.data.paymentId });
        res.status(201).json(payment);
        return;
      case 'already_registered':
        res.status(200).json(payment);
        return;
      case 'conflict':
        res.status(409).json({
          error: 'registration_conflict',
          message: `payment ${body.data.paymentId} is already known with other ${result.conflicts.join(', ')}`,
          conflicts: result.conflicts,
          payment,
        });
        return;
    }
  });

  router.get('/v1/payments', async (req, res) => {
    const query = zPaymentsQuery.safeParse(req.query);
    if (!query.success) return sendInvalidRequest(res, query.error);
    const found = await ledger.listPaymentsByMerchantReference(query.data.merchantReference);
    res.json({ payments: found.map((payment) => viewJson(payment, releaseOn)) });
  });

  router.get('/v1/payments/:paymentId', async (req, res) => {
    const paymentId = paymentIdOf(req.params.paymentId, res);
    if (!paymentId) return;
    const payment = await ledger.getPayment(paymentId);
    if (!payment) return sendError(res, 404, 'payment_not_found', `no payment ${paymentId} in the ledger`);
    const json = JSON.stringify(viewJson(payment, releaseOn));
    const etag = `"${createHash('sha256').update(json).digest('base64url').slice(0, 27)}"`;
    res.set('ETag', etag);
    if (req.get('if-none-match') === etag) {
      res.status(304).end();
      return;
    }
    res.type('application/json').send(json);
  });

  router.post('/v1/payments/:paymentId/release', async (req, res) => {
    const paymentId = paymentIdOf(req.params.paymentId, res);
    if (!paymentId) return;
    const result = await ledger.releasePayment(paymentId, releaseOn);
    switch (result.outcome) {
      case 'not_found':
        return sendError(res, 404, 'payment_not_found', `no payment ${paymentId} in the ledger`);
      case 'not_releasable':
        res.status(409).json({
          error: 'not_releasable',
          message: `payment ${paymentId} may not be released: ${result.decision.reason}`,
          fulfilment: result.decision,
        });
        return;
      case 'released':
        log.info('goods released', { paymentId });
        res.status(200).json(viewJson(result.payment, releaseOn));
        return;
      case 'already_released':
        res.status(200).json(viewJson(result.payment, releaseOn));
        return;
    }
  });

  router.get('/v1/payments/:paymentId/events', async (req, res) => {
    const paymentId = paymentIdOf(req.params.paymentId, res);
    if (!paymentId) return;
    const payment = await ledger.getPayment(paymentId);
    if (!payment) return sendError(res, 404, 'payment_not_found', `no payment ${paymentId} in the ledger`);
    const [storedEvents, changes] = await Promise.all([
      ledger.listPaymentEvents(paymentId),
      ledger.listStateChanges(paymentId),
    ]);
    const timeline = paymentTimeline(storedEvents, changes);
    res.json({ paymentId, timeline });
  });

  return router;
}

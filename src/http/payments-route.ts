import express, { type Router } from 'express';
import type { Ledger, PaymentView } from '../ledger';
import { sendError } from './http-error';

const zPaymentIdPattern = /^[A-Za-z0-9_-]{1,64}$/;

export function paymentJson(payment: PaymentView) {
  return {
    paymentId: payment.id,
    merchantReference: payment.merchantReference,
    amount: payment.amount,
    currency: payment.currency,
    statusCode: payment.statusCode,
    status: payment.status,
    statusCategory: payment.statusCategory,
    stage: payment.stage,
    uncertain: payment.uncertain,
    isAuthorized: payment.isAuthorized,
    isCancellable: payment.isCancellable,
    isRefundable: payment.isRefundable,
    capturedTotal: payment.capturedTotal,
    refundedTotal: payment.refundedTotal,
    statusCodeChangeDateTime: payment.changeTime,
    lastSource: payment.lastSource,
    firstSeenAt: new Date(payment.firstSeenAt).toISOString(),
    updatedAt: new Date(payment.updatedAt).toISOString(),
    eventCount: payment.eventCount,
    lastEventAt: payment.lastEventAt === null ? null : new Date(payment.lastEventAt).toISOString(),
  };
}

export function createPaymentsRouter(ledger: Ledger): Router {
  const router = express.Router();
  router.get('/v1/payments/:paymentId', async (req, res) => {
    const { paymentId } = req.params;
    if (!zPaymentIdPattern.test(paymentId)) {
      sendError(res, 400, 'invalid_payment_id', 'paymentId must be 1-64 letters, digits, "_" or "-"');
      return;
    }
    const payment = await ledger.getPayment(paymentId);
    if (!payment) {
      sendError(res, 404, 'payment_not_found', `no payment ${paymentId} in the ledger`);
      return;
    }
    res.json(paymentJson(payment));
  });
  return router;
}

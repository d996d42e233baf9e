import { decideRelease, type Payment, type ReleaseOn } from '../ledger';

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

/** The payment as fulfilment systems see it: the ledger state plus the release decision and its reason. */
export function paymentJson(payment: Payment, releaseOn: ReleaseOn) {
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
    fulfilment: {
      ...decideRelease(payment, releaseOn),
      dueAt: iso(payment.fulfilmentDueAt),
      releasedAt: iso(payment.releasedAt),
      reversedAfterRelease: payment.reversedAfterRelease,
    },
    registeredAt: iso(payment.registeredAt),
    firstSeenAt: iso(payment.firstSeenAt),
    updatedAt: iso(payment.updatedAt),
  };
}

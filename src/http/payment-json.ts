import { decideRelease, type Payment, type ReleaseOn, type StateChange, type StoredEvent } from '../ledger';

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

/** Every stored event and state change of a payment, oldest first: the API's and the CLI's timeline. */
export function paymentTimeline(events: readonly StoredEvent[], changes: readonly StateChange[]) {
  return (
    [
      ...events.map((event) => ({
        at: event.processedAt,
        entry: 'event' as const,
        eventId: event.eventId,
        source: event.source,
        type: event.type,
        statusCode: event.statusCode,
        statusCodeChangeDateTime: event.changeTime,
        outcome: event.outcome,
        reason: event.reason,
        deliveries: event.deliveries,
        replayOf: event.replayOf,
        receivedAt: new Date(event.receivedAt).toISOString(),
      })),
      ...changes.map((change) => ({
        at: change.at,
        entry: 'change' as const,
        kind: change.kind,
        fromStage: change.fromStage,
        toStage: change.toStage,
        fromStatusCode: change.fromStatusCode,
        toStatusCode: change.toStatusCode,
        cause: change.cause,
      })),
    ]
      // Stable sort: within one millisecond an event stays before the change it caused.
      .sort((a, b) => a.at - b.at)
      .map(({ at, ...entry }) => ({ ...entry, at: new Date(at).toISOString() }))
  );
}

import type { IncomingHttpHeaders } from 'node:http';
import { Counter, type Registry } from 'prom-client';

/** Header `paystate send` puts on its deliveries: processed as usual, left out of the delivery counters. */
export const TEST_DELIVERY_HEADER = 'x-paystate-test';

export function isTestDelivery(req: { headers: IncomingHttpHeaders }): boolean {
  return req.headers[TEST_DELIVERY_HEADER] === '1';
}

/**
 * The receiver's counters. Synchronous and in memory, so the delivery path gains no await and no I/O.
 * Test deliveries go to a counter of their own: anyone can set the header, so hiding them entirely would
 * let a sender keep its failed verifications out of sight.
 */
export interface WebhookMetrics {
  /** A verified delivery whose `events` events were queued. */
  accepted(req: { headers: IncomingHttpHeaders }, events: number): void;
  /** A refused delivery, by the error code it was answered with. */
  rejected(req: { headers: IncomingHttpHeaders }, reason: string): void;
}

export function createWebhookMetrics(registry: Registry): WebhookMetrics {
  const received = new Counter({
    name: 'paystate_webhooks_received_total',
    help: 'Webhook deliveries verified and queued (a re-delivery counts again: duplicates are only known to the ledger, see paystate_ledger_events{outcome="duplicate"})',
    registers: [registry],
  });
  const receivedEvents = new Counter({
    name: 'paystate_webhooks_received_events_total',
    help: 'Events in the webhook deliveries verified and queued (an array body carries several)',
    registers: [registry],
  });
  const rejected = new Counter({
    name: 'paystate_webhooks_rejected_total',
    help: 'Webhook deliveries refused, by the error code answered (401 signature reasons, 400 body reasons, payload_too_large, too_many_failed_verifications, queue_unavailable)',
    labelNames: ['reason'],
    registers: [registry],
  });
  const test = new Counter({
    name: 'paystate_webhooks_test_deliveries_total',
    help: 'Deliveries marked X-Paystate-Test: 1 (paystate send), left out of the counters above; result is accepted or the refusal code',
    labelNames: ['result'],
    registers: [registry],
  });
  return {
    accepted(req, events) {
      if (isTestDelivery(req)) return void test.inc({ result: 'accepted' });
      received.inc();
      receivedEvents.inc(events);
    },
    rejected(req, reason) {
      if (isTestDelivery(req)) return void test.inc({ result: reason });
      rejected.inc({ reason });
    },
  };
}

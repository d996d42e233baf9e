import { readFileSync } from 'node:fs';
import path from 'node:path';
import { readWebhookEvent, type ApplyInput, type EventRecord } from '../../src/ledger';

/**
 * Webhook envelopes for the PostgreSQL concurrency tests, cloned from the vendor stubs in test/fixtures the way
 * test/integration/ledger.test.ts builds them (its builders are local to that file), plus a seeded shuffle.
 */

const FIXTURES = path.join(__dirname, '../fixtures');

export type Envelope = Parameters<typeof readWebhookEvent>[0] & { id: string; type: string };

const fixture = (file: string): Envelope =>
  JSON.parse(readFileSync(path.join(FIXTURES, file), 'utf8')) as Envelope;
const PAYMENT_STUB = fixture('plugin-magento-core_stub_webhook_payment.pending_capture.json');
const REFUND_STUB = fixture('plugin-magento-core_stub_webhook_refund.refund_requested.json');

/** status / statusCategory / envelope type the platform sends with each code (platform.md table). */
const STATUS_OF: Record<number, [status: string, category: string, type: string]> = {
  0: ['CREATED', 'CREATED', 'payment.created'],
  4: ['PENDING_PAYMENT', 'PENDING_PAYMENT', 'payment.created'],
  46: ['REDIRECTED', 'PENDING_PAYMENT', 'payment.redirected'],
  51: ['AUTHORIZATION_REQUESTED', 'PENDING_CONNECT_OR_3RD_PARTY', 'payment.authorization_requested'],
  2: ['REJECTED', 'UNSUCCESSFUL', 'payment.rejected'],
  5: ['PENDING_CAPTURE', 'PENDING_MERCHANT', 'payment.pending_capture'],
  61: ['CANCELLATION_REQUESTED', 'PENDING_CONNECT_OR_3RD_PARTY', 'payment.cancellation_requested'],
  6: ['CANCELLED', 'UNSUCCESSFUL', 'payment.cancelled'],
  91: ['CAPTURE_REQUESTED', 'PENDING_CONNECT_OR_3RD_PARTY', 'payment.capture_requested'],
  9: ['CAPTURED', 'COMPLETED', 'payment.captured'],
  81: ['REFUND_REQUESTED', 'PENDING_CONNECT_OR_3RD_PARTY', 'payment.refund_requested'],
  8: ['REFUNDED', 'REFUNDED', 'payment.refunded'],
};

/** `yyyyMMddHHmmss` change times one minute apart, from 2024-01-05 10:00:00 UTC. */
export const minute = (n: number): string => `2024010510${String(n).padStart(2, '0')}00`;

export interface PaymentEnvelopeOptions {
  eventId: string;
  paymentId: string;
  statusCode: number;
  changeTime: string;
  merchantReference?: string;
  amount?: number;
}

/** A payment webhook cloned from the Magento payment stub (amount 1500 EUR unless given). */
export function paymentEnvelope(options: PaymentEnvelopeOptions): Envelope {
  const envelope = structuredClone(PAYMENT_STUB) as Envelope & {
    payment: {
      id: string;
      status: string;
      statusOutput: Record<string, unknown>;
      paymentOutput: { amountOfMoney: { amount: number }; references?: { merchantReference?: string } };
    };
  };
  const [status, category, type] = STATUS_OF[options.statusCode] ?? ['UNKNOWN', 'UNKNOWN', 'payment.unknown'];
  envelope.id = options.eventId;
  envelope.type = type;
  envelope.payment.id = options.paymentId;
  envelope.payment.status = status;
  Object.assign(envelope.payment.statusOutput, {
    statusCode: options.statusCode,
    statusCategory: category,
    statusCodeChangeDateTime: options.changeTime,
  });
  if (options.amount !== undefined) envelope.payment.paymentOutput.amountOfMoney.amount = options.amount;
  if (options.merchantReference !== undefined)
    envelope.payment.paymentOutput.references = { merchantReference: options.merchantReference };
  return envelope;
}

export interface RefundEnvelopeOptions {
  eventId: string;
  refundId: string;
  amount: number;
  changeTime: string;
  merchantReference?: string;
}

/** A `refund.refunded` webhook (statusCode 8) cloned from the Magento refund stub. */
export function refundEnvelope(options: RefundEnvelopeOptions): Envelope {
  const envelope = structuredClone(REFUND_STUB) as Envelope & {
    refund: {
      id: string;
      status: string;
      statusOutput: Record<string, unknown>;
      refundOutput: { amountOfMoney: { amount: number }; references?: { merchantReference?: string } };
    };
  };
  envelope.id = options.eventId;
  envelope.type = 'refund.refunded';
  envelope.refund.id = options.refundId;
  envelope.refund.status = 'REFUNDED';
  envelope.refund.refundOutput.amountOfMoney.amount = options.amount;
  Object.assign(envelope.refund.statusOutput, {
    statusCode: 8,
    statusCategory: 'REFUNDED',
    statusCodeChangeDateTime: options.changeTime,
  });
  if (options.merchantReference !== undefined)
    envelope.refund.refundOutput.references = { merchantReference: options.merchantReference };
  return envelope;
}

export interface Lifecycle {
  codes: readonly number[];
  /** Refunds (amounts) sent as refund.refunded webhooks after the statuses. */
  refunds: readonly number[];
}

/** Status sequences the platform sends: captured then refunded, captured, refused, cancelled, captured and refunded. */
export const LIFECYCLES: readonly Lifecycle[] = [
  { codes: [0, 5, 91, 9, 81, 8], refunds: [300, 200] },
  { codes: [4, 46, 5, 91, 9], refunds: [] },
  { codes: [0, 4, 46, 51, 2], refunds: [] },
  { codes: [4, 46, 5, 61, 6], refunds: [] },
  { codes: [46, 5, 91, 9], refunds: [400] },
];

/**
 * A payment's webhooks for a lifecycle: its statuses in order (one a minute), its refunds after them, and its last
 * status sent again under a new event id (the platform retrying with a fresh envelope).
 */
export function lifecycleEnvelopes(
  base: string | number,
  lifecycle: Lifecycle,
): { paymentId: string; statuses: Envelope[]; refunds: Envelope[]; resent: Envelope } {
  const paymentId = `${base}_0`;
  const merchantReference = `order-${base}`;
  const statuses = lifecycle.codes.map((statusCode, step) =>
    paymentEnvelope({
      eventId: `${paymentId}/${statusCode}`,
      paymentId,
      statusCode,
      changeTime: minute(step),
      merchantReference,
    }),
  );
  const refunds = lifecycle.refunds.map((amount, n) =>
    refundEnvelope({
      eventId: `${base}_${n + 1}/8`,
      refundId: `${base}_${n + 1}`,
      amount,
      changeTime: minute(lifecycle.codes.length + n),
      merchantReference,
    }),
  );
  const last = lifecycle.codes.length - 1;
  const resent = paymentEnvelope({
    eventId: `${paymentId}/${lifecycle.codes[last]}#resent`,
    paymentId,
    statusCode: lifecycle.codes[last]!,
    changeTime: minute(last),
    merchantReference,
  });
  return { paymentId, statuses, refunds, resent };
}

/** What the status worker hands the ledger for a delivered envelope. */
export function applyInputOf(envelope: Envelope, receivedAt = Date.now()): ApplyInput {
  const event: EventRecord = {
    eventId: envelope.id,
    source: 'webhook',
    type: envelope.type,
    keyId: 'k',
    signature: 's',
    rawBody: JSON.stringify(envelope),
    rawIndex: null,
    receivedAt,
  };
  return { event, reading: readWebhookEvent(envelope) };
}

/** A seeded random source (mulberry32), so a failing order can be reproduced from its seed. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Fisher–Yates with a seeded random source. */
export function shuffled<T>(items: readonly T[], seed: number): T[] {
  const random = seededRandom(seed);
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}

/** Runs `work` over `items` with at most `concurrency` at a time; resolves when all are done. */
export async function eachConcurrently<T>(
  items: readonly T[],
  concurrency: number,
  work: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const lane = async () => {
    for (let index = next++; index < items.length; index = next++) await work(items[index] as T);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, lane));
}

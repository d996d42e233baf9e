import type { z } from 'zod';
import {
  zPaymentDetailsOperations,
  zPaymentPayload,
  zRefundPayload,
  type PaymentPayload,
  type RefundPayload,
} from '../../schemas/status-payloads';

export type ObservationSource = 'webhook' | 'poll' | 'replay';

interface StatusFields {
  statusCode: number;
  status: string | null;
  statusCategory: string | null;
  /** Platform change time, `yyyyMMddHHmmss`; absent in some payloads. */
  changeTime: string | null;
  amount: number | null;
  currency: string | null;
  merchantReference: string | null;
}

export interface PaymentObservation extends StatusFields {
  kind: 'payment';
  paymentId: string;
  isAuthorized: boolean | null;
  isCancellable: boolean | null;
  isRefundable: boolean | null;
  acquiredAmount: number | null;
  /** `statusOutput.errors` as JSON, kept for the decline reason. */
  errorsJson: string | null;
  /** From GetPaymentDetails `Operations`: the captured total (null when the answer has no Operations). */
  capturedFromOperations: number | null;
  /** From GetPaymentDetails `Operations`: the refunds the platform holds. Webhooks carry none. */
  refunds: RefundObservation[];
}

export interface RefundObservation extends StatusFields {
  kind: 'refund';
  refundId: string;
  /** The id base shared by a payment and its refunds (`3254564310` of `3254564310_1`). */
  paymentBase: string;
}

export type Observation = PaymentObservation | RefundObservation;

/** What an event says, once read: a status to apply, or why it changes nothing. */
export type Reading =
  | { kind: 'observation'; observation: Observation }
  | { kind: 'ignored'; reason: string }
  | { kind: 'invalid'; reason: string };

/** The portal's test send always carries this payment id and must never become a ledger payment. */
export const PORTAL_TEST_PAYMENT_ID = '9999_9';

/**
 * Ids are `<base>_<n>`, or (without `_`) all digits whose last three are the sequence. A payment's captures,
 * refunds and later attempts share the base.
 */
export function paymentBaseOf(id: string): string {
  const underscore = id.lastIndexOf('_');
  if (underscore > 0) return id.slice(0, underscore);
  if (/^\d{4,}$/.test(id)) return id.slice(0, -3);
  return id;
}

function describeIssue(prefix: string, error: z.ZodError): string {
  const issue = error.issues[0];
  const path = [prefix, ...(issue?.path ?? [])].join('.');
  return `${path}: ${issue?.message ?? 'invalid'}`;
}

function statusFields(
  payload: PaymentPayload | RefundPayload,
  output: PaymentPayload['paymentOutput'] | RefundPayload['refundOutput'],
): StatusFields {
  const so = payload.statusOutput;
  return {
    statusCode: so.statusCode,
    status: payload.status ?? null,
    statusCategory: so.statusCategory ?? null,
    changeTime: so.statusCodeChangeDateTime ?? null,
    amount: output?.amountOfMoney?.amount ?? null,
    currency: output?.amountOfMoney?.currencyCode ?? null,
    merchantReference: output?.references?.merchantReference ?? null,
  };
}

/** Reads a platform payment object (webhook `payment`, or a GetPaymentDetails answer). */
export function readPaymentPayload(payment: unknown, prefix = 'payment'): Reading {
  const parsed = zPaymentPayload.safeParse(payment);
  if (!parsed.success) return { kind: 'invalid', reason: describeIssue(prefix, parsed.error) };
  const p = parsed.data;
  if (p.id === PORTAL_TEST_PAYMENT_ID) return { kind: 'ignored', reason: 'portal test payment 9999_9' };
  const so = p.statusOutput;
  return {
    kind: 'observation',
    observation: {
      kind: 'payment',
      paymentId: p.id,
      ...statusFields(p, p.paymentOutput),
      isAuthorized: so.isAuthorized ?? null,
      isCancellable: so.isCancellable ?? null,
      isRefundable: so.isRefundable ?? null,
      acquiredAmount: p.paymentOutput?.acquiredAmount?.amount ?? null,
      errorsJson: so.errors?.length ? JSON.stringify(so.errors) : null,
      capturedFromOperations: null,
      refunds: [],
    },
  };
}

const CAPTURED_CODES = new Set([9, 95]);
const REFUND_CODES = new Set([8, 81, 82, 83, 85, 94, 96]);

/**
 * Reads a GetPaymentDetails answer: the payment itself plus `Operations` (capital O on the wire), one entry per
 * authorisation, capture, refund or cancel. Captured and refunded totals are sums over them, which repairs
 * captures and refunds that no webhook reported.
 */
export function readPaymentDetails(details: unknown): Reading {
  const reading = readPaymentPayload(details, 'details');
  if (reading.kind !== 'observation' || reading.observation.kind !== 'payment') return reading;
  const parsed = zPaymentDetailsOperations.safeParse(details);
  if (!parsed.success) return { kind: 'invalid', reason: describeIssue('details', parsed.error) };
  const operations = parsed.data.Operations;
  if (operations === undefined) return reading;
  const payment = reading.observation;
  const base = paymentBaseOf(payment.paymentId);
  let captured = 0;
  const refunds: RefundObservation[] = [];
  for (const operation of operations) {
    const code = operation.statusOutput.statusCode;
    if (CAPTURED_CODES.has(code)) captured += operation.amountOfMoney?.amount ?? 0;
    if (REFUND_CODES.has(code)) {
      refunds.push({
        kind: 'refund',
        refundId: operation.id,
        paymentBase: base,
        ...statusFields(operation, {
          amountOfMoney: operation.amountOfMoney,
          references: operation.references,
        }),
      });
    }
  }
  return { kind: 'observation', observation: { ...payment, capturedFromOperations: captured, refunds } };
}

function readRefundPayload(refund: unknown): Reading {
  const parsed = zRefundPayload.safeParse(refund);
  if (!parsed.success) return { kind: 'invalid', reason: describeIssue('refund', parsed.error) };
  const r = parsed.data;
  return {
    kind: 'observation',
    observation: {
      kind: 'refund',
      refundId: r.id,
      paymentBase: paymentBaseOf(r.id),
      ...statusFields(r, r.refundOutput),
    },
  };
}

/** The envelope fields this module needs; the full schema lives in schemas/webhook-envelope. */
export interface EventEnvelope {
  type: string;
  payment?: unknown;
  refund?: unknown;
  payout?: unknown;
  token?: unknown;
  paymentLink?: unknown;
}

/** Turns a verified webhook event into what it says about a payment. State comes from statusOutput, not type. */
export function readWebhookEvent(event: EventEnvelope): Reading {
  if (event.type === 'payment.test') return { kind: 'ignored', reason: 'portal test send (payment.test)' };
  if (event.payment !== undefined) return readPaymentPayload(event.payment);
  if (event.refund !== undefined) return readRefundPayload(event.refund);
  const other = ['payout', 'token', 'paymentLink'].find(
    (key) => event[key as keyof EventEnvelope] !== undefined,
  );
  return {
    kind: 'ignored',
    reason: other ? `${other} events do not change payment state` : 'no payload object',
  };
}

import type { Stage } from './status-table';

/** What the goods may be released on: a capture (9, 95) or, where the merchant accepts it, an authorisation. */
export type ReleaseOn = 'captured' | 'authorized';

export const DECLINE_CATEGORIES = [
  'fraud',
  'insufficient_funds',
  'expired_or_invalid_card',
  'three_d_secure_failure',
  'issuer_unreachable',
  'setup_error',
  'declined',
] as const;
export type DeclineCategory = (typeof DECLINE_CATEGORIES)[number];

export type ReleaseReason =
  | 'captured'
  | 'authorised'
  | 'awaiting_payment'
  | 'awaiting_authorisation'
  | 'awaiting_capture'
  | 'capture_pending'
  | 'status_uncertain'
  | 'unknown_status_code'
  | 'payment_refused'
  | 'payment_cancelled'
  | 'cancellation_pending'
  | 'deletion_pending'
  | 'payment_refunded'
  | 'refund_pending'
  | 'payment_reversed'
  | 'manual_action_required';

export interface ReleaseDecision {
  releasable: boolean;
  reason: ReleaseReason;
  /** For a refused payment: the platform's first error code and what kind of decline it is. */
  errorCode?: string;
  declineCategory?: DeclineCategory;
}

export interface ReleaseFacts {
  stage: Stage;
  uncertain: boolean;
  refundedTotal: number;
  errorsJson: string | null;
}

const NOT_RELEASABLE: Partial<Record<Stage, ReleaseReason>> = {
  expected: 'awaiting_payment',
  created: 'awaiting_authorisation',
  pending_authorisation: 'awaiting_authorisation',
  capture_pending: 'capture_pending',
  cancellation_pending: 'cancellation_pending',
  deletion_pending: 'deletion_pending',
  refund_pending: 'refund_pending',
  refunded: 'payment_refunded',
  cancelled: 'payment_cancelled',
  reversed: 'payment_reversed',
  manual_action: 'manual_action_required',
  unknown: 'unknown_status_code',
};

/**
 * Whether goods may be released, and why. Never on an uncertain, unknown, failed, cancelled or refunded state:
 * a payment with any refund booked against it is held back too, since a partial refund usually means a return.
 */
export function decideRelease(payment: ReleaseFacts, releaseOn: ReleaseOn): ReleaseDecision {
  if (payment.uncertain) return { releasable: false, reason: 'status_uncertain' };
  if (payment.refundedTotal > 0) return { releasable: false, reason: 'payment_refunded' };
  if (payment.stage === 'rejected')
    return { releasable: false, reason: 'payment_refused', ...declineOf(payment) };
  if (payment.stage === 'captured') return { releasable: true, reason: 'captured' };
  if (payment.stage === 'authorised') {
    return releaseOn === 'authorized'
      ? { releasable: true, reason: 'authorised' }
      : { releasable: false, reason: 'awaiting_capture' };
  }
  return { releasable: false, reason: NOT_RELEASABLE[payment.stage] ?? 'unknown_status_code' };
}

/** The stages that undo released goods: refunds, cancellation or deletion, chargeback. */
export const REVERSING_STAGES: readonly Stage[] = ['refund_pending', 'refunded', 'cancelled', 'reversed'];

/**
 * ISO 8583 response codes, which the platform's card errors carry as `30XX1001` (e.g. 30511001 = 51,
 * insufficient funds). Grouping inferred from the scheme codes; anything else is a plain decline.
 */
const ISO_RESPONSE_CATEGORIES: Record<string, DeclineCategory> = {
  '04': 'fraud',
  '07': 'fraud',
  '34': 'fraud',
  '41': 'fraud',
  '43': 'fraud',
  '59': 'fraud',
  '63': 'fraud',
  '51': 'insufficient_funds',
  '61': 'insufficient_funds',
  '65': 'insufficient_funds',
  '14': 'expired_or_invalid_card',
  '15': 'expired_or_invalid_card',
  '33': 'expired_or_invalid_card',
  '54': 'expired_or_invalid_card',
  '56': 'expired_or_invalid_card',
  '91': 'issuer_unreachable',
  '92': 'issuer_unreachable',
  '96': 'issuer_unreachable',
  '68': 'issuer_unreachable',
  '03': 'setup_error',
  '30': 'setup_error',
  '58': 'setup_error',
};

interface PlatformError {
  errorCode?: string;
  id?: string;
  category?: string;
}

export function classifyDecline(error: PlatformError): DeclineCategory {
  const code = error.errorCode ?? '';
  const iso = /^30(\d{2})\d{4}$/.exec(code)?.[1];
  if (iso && ISO_RESPONSE_CATEGORIES[iso]) return ISO_RESPONSE_CATEGORIES[iso];
  if (code === '40001134' || /AUTHENTICATION|3DS|THREEDS/i.test(error.id ?? ''))
    return 'three_d_secure_failure';
  if (error.category === 'CONNECT_PLATFORM_ERROR' || error.category === 'IO_ERROR')
    return 'issuer_unreachable';
  if (/^(400|410)/.test(code)) return 'setup_error';
  return 'declined';
}

function declineOf(payment: ReleaseFacts): Pick<ReleaseDecision, 'errorCode' | 'declineCategory'> {
  let errors: PlatformError[] = [];
  try {
    errors = payment.errorsJson ? (JSON.parse(payment.errorsJson) as PlatformError[]) : [];
  } catch {
    errors = [];
  }
  const first = errors[0];
  if (!first) return { declineCategory: 'declined' };
  return { errorCode: first.errorCode, declineCategory: classifyDecline(first) };
}

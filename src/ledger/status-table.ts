/**
 * Where a payment stands in its life, whatever statusCode put it there. Operation-failure codes
 * (63, 73, 83, 93, 94, 96) report that a cancel, deletion, refund or capture failed: they map to the standing
 * the payment keeps (authorised or captured), never to a failed payment.
 */
export const STAGES = [
  'expected',
  'created',
  'pending_authorisation',
  'authorised',
  'cancellation_pending',
  'capture_pending',
  'captured',
  'deletion_pending',
  'refund_pending',
  'refunded',
  'cancelled',
  'rejected',
  'manual_action',
  'reversed',
  'unknown',
] as const;
export type Stage = (typeof STAGES)[number];

interface StageInfo {
  /** Order of the lifecycle: on equal platform change times the higher rank wins. */
  rank: number;
  /** No further change without a new merchant action; left only along ALLOWED_EXITS. */
  final: boolean;
}

export const STAGE_INFO: Record<Stage, StageInfo> = {
  // Registered by the shop, no status from the platform yet.
  expected: { rank: -10, final: false },
  created: { rank: 0, final: false },
  pending_authorisation: { rank: 10, final: false },
  authorised: { rank: 20, final: false },
  cancellation_pending: { rank: 30, final: false },
  capture_pending: { rank: 30, final: false },
  captured: { rank: 40, final: true },
  deletion_pending: { rank: 45, final: false },
  refund_pending: { rank: 50, final: false },
  refunded: { rank: 60, final: true },
  cancelled: { rank: 60, final: true },
  rejected: { rank: 60, final: true },
  manual_action: { rank: 60, final: true },
  reversed: { rank: 70, final: true },
  // Ranked per observation from its statusCategory (see classifyUnknownCode).
  unknown: { rank: 0, final: false },
};

/** The only ways out of a final stage the platform allows: refunds, deletion and chargeback after capture. */
export const ALLOWED_EXITS: Partial<Record<Stage, readonly Stage[]>> = {
  captured: ['refund_pending', 'refunded', 'deletion_pending', 'cancelled', 'reversed'],
};

export interface StatusCodeInfo {
  stage: Stage;
  meaning: string;
  /** The platform itself does not know the outcome yet; the reconciler checks these sooner. */
  uncertain: boolean;
  /** Reports a failed operation on a payment that otherwise keeps its standing. */
  operationRefused: boolean;
  /**
   * The pending stage whose operation this refusal ends. The refusal replaces it, so on equal change times it
   * ranks just above it (the platform can report both within one second).
   */
  answers?: Stage;
}

function code(stage: Stage, meaning: string, flags: Partial<StatusCodeInfo> = {}): StatusCodeInfo {
  return { stage, meaning, uncertain: false, operationRefused: false, ...flags };
}
const uncertain = { uncertain: true };
const refused = { operationRefused: true };

export const STATUS_CODES: Readonly<Record<number, StatusCodeInfo>> = {
  0: code('created', 'invalid or incomplete'),
  1: code('cancelled', 'cancelled by customer'),
  2: code('rejected', 'authorisation refused'),
  4: code('pending_authorisation', 'order stored, waiting'),
  46: code('pending_authorisation', 'waiting for 3-D Secure authentication'),
  5: code('authorised', 'authorised'),
  50: code('pending_authorisation', 'authorised, waiting for external result'),
  51: code('pending_authorisation', 'authorisation waiting'),
  52: code('pending_authorisation', 'authorisation not known', uncertain),
  55: code('pending_authorisation', 'stand-by'),
  56: code('authorised', 'authorised with scheduled payments'),
  57: code('rejected', 'not OK with scheduled payments'),
  59: code('manual_action', 'authorisation to be requested manually'),
  6: code('cancelled', 'authorised and cancelled'),
  61: code('cancellation_pending', 'authorisation deletion waiting'),
  62: code('cancellation_pending', 'authorisation deletion uncertain', uncertain),
  63: code('authorised', 'authorisation deletion refused', { ...refused, answers: 'cancellation_pending' }),
  64: code('cancelled', 'authorised and cancelled'),
  7: code('cancelled', 'payment deleted'),
  71: code('deletion_pending', 'payment deletion pending'),
  72: code('deletion_pending', 'payment deletion uncertain', uncertain),
  73: code('captured', 'payment deletion refused', { ...refused, answers: 'deletion_pending' }),
  74: code('cancelled', 'payment deleted'),
  75: code('cancelled', 'deletion processed by merchant'),
  8: code('refunded', 'refunded'),
  81: code('refund_pending', 'refund pending'),
  82: code('refund_pending', 'refund uncertain', uncertain),
  83: code('captured', 'refund refused', { ...refused, answers: 'refund_pending' }),
  84: code('reversed', 'payment declined by acquirer, will be debited'),
  85: code('refunded', 'refund processed by merchant'),
  9: code('captured', 'captured'),
  91: code('capture_pending', 'capture processing'),
  92: code('capture_pending', 'capture uncertain', uncertain),
  93: code('authorised', 'capture refused', { ...refused, answers: 'capture_pending' }),
  94: code('captured', 'refund declined by acquirer', { ...refused, answers: 'refund_pending' }),
  95: code('captured', 'payment processed by merchant'),
  96: code('captured', 'refund reversed', refused),
  99: code('capture_pending', 'being processed'),
};

const CATEGORY_RANK: Record<string, number> = {
  CREATED: STAGE_INFO.created.rank,
  PENDING_PAYMENT: STAGE_INFO.pending_authorisation.rank,
  PENDING_CONNECT_OR_3RD_PARTY: STAGE_INFO.pending_authorisation.rank,
  PENDING_MERCHANT: STAGE_INFO.authorised.rank,
  COMPLETED: STAGE_INFO.captured.rank,
  REFUNDED: STAGE_INFO.refunded.rank,
  REVERSED: STAGE_INFO.reversed.rank,
  UNSUCCESSFUL: STAGE_INFO.rejected.rank,
};

export interface Classification {
  stage: Stage;
  rank: number;
  final: boolean;
  uncertain: boolean;
  known: boolean;
}

/**
 * Classifies any statusCode. An unknown code lands in stage `unknown` (never releasable), ranked by its
 * statusCategory when present so that ordering still works, and is treated as uncertain.
 */
export function classifyStatusCode(statusCode: number, statusCategory?: string | null): Classification {
  const info = STATUS_CODES[statusCode];
  if (info) {
    const { final } = STAGE_INFO[info.stage];
    const rank = info.answers ? STAGE_INFO[info.answers].rank + 1 : STAGE_INFO[info.stage].rank;
    return { stage: info.stage, rank, final, uncertain: info.uncertain, known: true };
  }
  const rank = (statusCategory ? CATEGORY_RANK[statusCategory] : undefined) ?? 0;
  return { stage: 'unknown', rank, final: false, uncertain: true, known: false };
}

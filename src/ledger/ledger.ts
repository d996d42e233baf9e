import type { ReleaseDecision, ReleaseOn } from './fulfilment';
import type { Reading, ObservationSource } from './observation';
import type {
  drifts,
  EventOutcome,
  events,
  operatorActions,
  payments,
  refunds,
  stateChanges,
} from './schema';
import type { Stage } from './status-table';

/** The raw event as it reached us, kept for audit and for a replay that re-verifies its signature. */
export interface EventRecord {
  eventId: string;
  source: ObservationSource;
  type: string | null;
  keyId: string | null;
  signature: string | null;
  /** The delivery body exactly as received (for an array body, the whole array). */
  rawBody: string | null;
  /** Position of this event when the delivery body was a JSON array. */
  rawIndex: number | null;
  receivedAt: number;
  /** For a replay: the original event id and the operator action that asked for it. */
  replayOf?: string | null;
  actionId?: number | null;
}

export interface ApplyInput {
  event: EventRecord;
  reading: Reading;
}

export interface ApplyResult {
  outcome: Exclude<EventOutcome, 'failed'>;
  paymentId: string | null;
  /** Whether the payment's state (stage, statusCode or totals) changed. */
  stateChanged: boolean;
  /** The goods were released and this event moved the payment to refunded, cancelled or reversed. */
  reversedAfterRelease: boolean;
  /** The reconciler gave up on this payment with this event: it needs a human. */
  stale: boolean;
  reason: string;
}

/** What the shop tells us right after its CreatePayment call. */
export interface PaymentRegistration {
  paymentId: string;
  merchantReference: string;
  amount: number;
  currency: string;
  fulfilmentDueAt: number;
  /** Whether the caller gave fulfilmentDueAt (a default is not compared on a repeated registration). */
  fulfilmentDueAtGiven: boolean;
}

export type RegisterResult =
  | { outcome: 'registered' | 'already_registered'; payment: PaymentView }
  | { outcome: 'conflict'; payment: PaymentView; conflicts: string[] };

export type ReleaseResult =
  | { outcome: 'released' | 'already_released'; payment: PaymentView }
  | { outcome: 'not_releasable'; payment: PaymentView; decision: ReleaseDecision }
  | { outcome: 'not_found' };

export type ChangeWithPayment = StateChange & { payment: Payment };

export interface LedgerCounts {
  eventsByOutcome: Partial<Record<EventOutcome, number>>;
  paymentsByStage: Partial<Record<Stage, number>>;
  reversedAfterRelease: number;
  stale: number;
  drifts: number;
}

export interface DueCheck {
  paymentId: string;
  checkAttempts: number;
  nextCheckAt: number;
}

export type Drift = typeof drifts.$inferSelect;

export type Payment = typeof payments.$inferSelect;
export type StoredEvent = typeof events.$inferSelect;
export type StateChange = typeof stateChanges.$inferSelect;
export type Refund = typeof refunds.$inferSelect;

export interface PaymentView extends Payment {
  eventCount: number;
  lastEventAt: number | null;
}

/**
 * The one door into the ledger and its named queries. Callers see only this async interface, so a ledger
 * on another database fits without touching them; the SQLite implementation is synchronous inside.
 */
export interface Ledger {
  /** Records the event and applies what it says, all in one transaction. */
  apply(input: ApplyInput): Promise<ApplyResult>;
  /** Records an event whose processing exhausted its attempts, with the last error. */
  recordFailedEvent(event: EventRecord, error: string): Promise<void>;
  getPayment(paymentId: string): Promise<PaymentView | undefined>;
  registerPayment(registration: PaymentRegistration): Promise<RegisterResult>;
  /** Records that the goods were shipped, when the payment is releasable under `releaseOn`. */
  releasePayment(paymentId: string, releaseOn: ReleaseOn): Promise<ReleaseResult>;
  listPaymentsByMerchantReference(merchantReference: string): Promise<PaymentView[]>;
  /** State changes after `afterSeq`, in commit order. */
  listChanges(afterSeq: number, limit: number): Promise<ChangeWithPayment[]>;
  /** The highest committed change's seq (0 for none): a long-poll's cheap "anything new?" before `listChanges`. */
  lastChangeSeq(): Promise<number>;
  counts(): Promise<LedgerCounts>;
  /** Payments whose check is due at `now`, oldest first (reads only due rows, through the index). */
  listDueChecks(now: number, limit: number): Promise<DueCheck[]>;
  /** Records a poll the platform answered 404 (it does not know the payment): the ladder climbs on. */
  recordPollMiss(paymentId: string, reason: string): Promise<{ stale: boolean }>;
  listDrifts(paymentId?: string): Promise<Drift[]>;
  /** Stored events, oldest first, filtered; `afterSeq` pages. */
  listEvents(filter: EventFilter): Promise<StoredEvent[]>;
  recordAction(action: OperatorActionInput): Promise<OperatorAction>;
  listActions(limit: number): Promise<OperatorAction[]>;
  /**
   * Feeds a stored event back through `apply` as a new event (source `replay`, linked to the original and the
   * action), so it meets the ordering rule like any other. A dry run rolls everything back and only reports.
   */
  replayEvent(eventId: string, options: { actionId: number | null; dryRun: boolean }): Promise<ReplayResult>;
  /** Recomputes every payment's state from the stored events and lists where the ledger differs. */
  rebuild(options: RebuildOptions): Promise<RebuildReport>;
  getEvent(eventId: string): Promise<StoredEvent | undefined>;
  listPaymentEvents(paymentId: string): Promise<StoredEvent[]>;
  listStateChanges(paymentId: string): Promise<StateChange[]>;
  listRefunds(paymentId: string): Promise<Refund[]>;
  /** Clears raw bodies received before `receivedBefore`; outcome rows stay. Returns how many were cleared. */
  purgeRawBodies(receivedBefore: number): Promise<number>;
  /** Throws when the ledger cannot be read. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

export interface EventFilter {
  outcome?: EventOutcome;
  type?: string;
  paymentId?: string;
  source?: ObservationSource;
  since?: number;
  until?: number;
  afterSeq?: number;
  limit: number;
}

export type OperatorAction = typeof operatorActions.$inferSelect;

export interface OperatorActionInput {
  actor: string;
  reason: string | null;
  action: string;
  target: string | null;
  count: number;
  dryRun: boolean;
  details?: unknown;
}

/** The parts of a payment's state a replay or a rebuild compares. */
export interface PaymentStatusView {
  statusCode: number | null;
  stage: Stage;
  capturedTotal: number;
  refundedTotal: number;
  changeTime: string | null;
}

export type ReplayResult =
  | { outcome: 'not_found' | 'no_raw_body'; eventId: string }
  | {
      outcome: ApplyResult['outcome'];
      eventId: string;
      replayEventId: string;
      paymentId: string | null;
      before: PaymentStatusView | null;
      after: PaymentStatusView | null;
      reason: string;
      dryRun: boolean;
    };

export interface RebuildOptions {
  dryRun: boolean;
  /** Called before each phase (for progress; tests use it to write while a rebuild runs). */
  beforePhase?: (phase: 'compare' | 'correct') => Promise<void> | void;
}

export interface RebuildReport {
  checked: number;
  /** Payments whose recomputed state differs: corrected unless this was a dry run. */
  differences: { paymentId: string; ledger: PaymentStatusView; rebuilt: PaymentStatusView }[];
  /** Payments written to while the rebuild ran, so not comparable: left as they are (run it again). */
  changed: string[];
  /** Payments some of whose raw events were cleared by retention: they cannot be recomputed. */
  skipped: string[];
  applied: boolean;
  /** A correction transaction that failed: the payments from it on were not corrected (the ones before were). */
  failed: { error: string; paymentIds: string[] } | null;
}

/** The ledger's database cannot be reached (connection refused or lost): wait and try again, not a bad event. */
export class LedgerUnavailableError extends Error {
  override name = 'LedgerUnavailableError';
}

export { openSqliteLedger } from './sqlite-ledger';
export type { OpenSqliteLedgerOptions } from './sqlite-ledger';
export { openPgLedger } from './open';
export type { OpenPgLedgerOptions } from './pg-ledger';
export { openLedger, describeLedger } from './open';
export type { LedgerLocation, OpenLedgerOptions } from './open';
export { LedgerUnavailableError } from './ledger';
export { announcingWrites } from './announce';
export type {
  Ledger,
  ApplyInput,
  ApplyResult,
  EventRecord,
  Payment,
  PaymentView,
  StoredEvent,
  StateChange,
  Refund,
  PaymentRegistration,
  RegisterResult,
  ReleaseResult,
  ChangeWithPayment,
  LedgerCounts,
  DueCheck,
  Drift,
  EventFilter,
  OperatorAction,
  OperatorActionInput,
  PaymentStatusView,
  ReplayResult,
  RebuildOptions,
  RebuildReport,
} from './ledger';
export { readStoredEvent } from './operations';
export { decideRelease, classifyDecline, REVERSING_STAGES, DECLINE_CATEGORIES } from './fulfilment';
export type { ReleaseOn, ReleaseDecision, ReleaseReason, DeclineCategory, ReleaseFacts } from './fulfilment';
export {
  readWebhookEvent,
  readPaymentPayload,
  readPaymentDetails,
  paymentBaseOf,
  PORTAL_TEST_PAYMENT_ID,
} from './observation';
export { planNextCheck, DEFAULT_CHECK_POLICY } from './check-schedule';
export type { CheckPolicy, CheckFacts, CheckPlan } from './check-schedule';
export type {
  Observation,
  PaymentObservation,
  RefundObservation,
  Reading,
  ObservationSource,
} from './observation';
export { decide } from './decide';
export type { Decision, HeldStatus, ObservedStatus } from './decide';
export { classifyStatusCode, STATUS_CODES, STAGES, STAGE_INFO, ALLOWED_EXITS } from './status-table';
export type { Stage, Classification } from './status-table';
export { EVENT_OUTCOMES, CHANGE_KINDS } from './schema';
export type { EventOutcome, ChangeKind } from './schema';

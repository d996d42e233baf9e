export { openSqliteLedger } from './sqlite-ledger';
export type { OpenSqliteLedgerOptions } from './sqlite-ledger';
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
} from './ledger';
export { readWebhookEvent, readPaymentPayload, paymentBaseOf, PORTAL_TEST_PAYMENT_ID } from './observation';
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
export { EVENT_OUTCOMES } from './schema';
export type { EventOutcome } from './schema';

export {
  STATUS_EVENTS_QUEUE,
  STATUS_EVENT_JOB_OPTIONS,
  zStatusEventJob,
  createStatusEventsQueue,
  StatusEventEnqueuer,
  EnqueueTimeoutError,
} from './status-events';
export type { StatusEventJob } from './status-events';
export { createRedisConnection, readRedisDurability } from './redis-connection';
export {
  createStatusEventProcessor,
  recordExhaustedJob,
  InvalidStatusEventError,
  eventRecordOf,
} from './status-event-processor';
export { createStatusWorker } from './status-worker';
export type { StatusWorkerOptions } from './status-worker';
export {
  startReconciler,
  sweepDuePayments,
  createPollProcessor,
  pollJobId,
  RECONCILE_SWEEPS_QUEUE,
  PAYMENT_POLLS_QUEUE,
  zPaymentPollJob,
} from './reconcile';
export type {
  PaymentPollJob,
  PaymentDetailsSource,
  Reconciler,
  ReconcilerOptions,
  SweepOptions,
} from './reconcile';
export { createLedgerOutageGuard } from './ledger-outage';
export type { LedgerOutageGuard } from './ledger-outage';
export { CHANGE_SIGNAL_CHANNEL, createChangeAnnouncer, subscribeToChanges } from './change-signal';
export type { ChangeSignal } from './change-signal';

import { index, integer, sqliteTable, text } from 'drizzle-orm/sqlite-core';
import { EVENT_OUTCOMES } from '../../schemas/api';
import { STAGES } from './status-table';

/** Milliseconds since the epoch. */
const epochMs = (name: string) => integer(name);
const flag = (name: string) => integer(name, { mode: 'boolean' });

export { EVENT_OUTCOMES };
export type EventOutcome = (typeof EVENT_OUTCOMES)[number];

export const OBSERVATION_SOURCES = ['webhook', 'poll', 'replay'] as const;

/** What a change-feed entry records: a status, a refund total, or a fulfilment fact. */
export const CHANGE_KINDS = [
  'status',
  'refund',
  'registered',
  'released',
  'reversed_after_release',
  'stale',
] as const;
export type ChangeKind = (typeof CHANGE_KINDS)[number];

export const payments = sqliteTable(
  'payments',
  {
    id: text('id').primaryKey(),
    base: text('base').notNull(),
    merchantReference: text('merchant_reference'),
    amount: integer('amount'),
    currency: text('currency'),
    statusCode: integer('status_code'),
    status: text('status'),
    statusCategory: text('status_category'),
    stage: text('stage', { enum: STAGES }).notNull(),
    rank: integer('rank').notNull(),
    uncertain: flag('uncertain').notNull().default(false),
    isAuthorized: flag('is_authorized'),
    isCancellable: flag('is_cancellable'),
    isRefundable: flag('is_refundable'),
    capturedTotal: integer('captured_total').notNull().default(0),
    refundedTotal: integer('refunded_total').notNull().default(0),
    errorsJson: text('errors_json'),
    changeTime: text('change_time'),
    lastSource: text('last_source', { enum: OBSERVATION_SOURCES }),
    /** When the goods are due; set by registration (POST /v1/payments). */
    fulfilmentDueAt: epochMs('fulfilment_due_at'),
    registeredAt: epochMs('registered_at'),
    releasedAt: epochMs('released_at'),
    /** Released goods whose payment later moved to refunded, cancelled or reversed. */
    reversedAfterRelease: flag('reversed_after_release').notNull().default(false),
    /** When the reconciler should next ask the platform; null when the status is conclusive. */
    nextCheckAt: epochMs('next_check_at'),
    /** Polls made since the last conclusive status: the step on the escalating delay ladder. */
    checkAttempts: integer('check_attempts').notNull().default(0),
    /** Set when the reconciler gave up (RECONCILE_GIVE_UP): a human must look. */
    staleAt: epochMs('stale_at'),
    /**
     * A refund event asked for a poll by then (partial refunds are only reliably totalled from Operations). Kept
     * apart from the status's own plan so that a later status change does not cancel it; a poll made once it was
     * due clears it.
     */
    refundCheckAt: epochMs('refund_check_at'),
    firstSeenAt: epochMs('first_seen_at').notNull(),
    updatedAt: epochMs('updated_at').notNull(),
  },
  (t) => [
    index('payments_base_idx').on(t.base),
    index('payments_merchant_reference_idx').on(t.merchantReference),
    index('payments_next_check_idx').on(t.nextCheckAt),
  ],
);

/**
 * Every raw event exactly as received, unique on the envelope id: this is the de-duplication gate that
 * outlives BullMQ's job retention. Raw bytes are cleared after the retention period; the outcome row stays.
 */
export const events = sqliteTable(
  'events',
  {
    seq: integer('seq').primaryKey({ autoIncrement: true }),
    eventId: text('event_id').notNull().unique('events_event_id_unique'),
    source: text('source', { enum: OBSERVATION_SOURCES }).notNull(),
    type: text('type'),
    paymentId: text('payment_id'),
    refundId: text('refund_id'),
    statusCode: integer('status_code'),
    changeTime: text('change_time'),
    keyId: text('key_id'),
    signature: text('signature'),
    rawBody: text('raw_body'),
    /** Position of the event inside a delivery whose body was a JSON array. */
    rawIndex: integer('raw_index'),
    rawBytes: integer('raw_bytes'),
    outcome: text('outcome', { enum: EVENT_OUTCOMES }).notNull(),
    reason: text('reason'),
    deliveries: integer('deliveries').notNull().default(1),
    /** For a replay: the event it replays, and the operator action that asked for it. */
    replayOf: text('replay_of'),
    actionId: integer('action_id'),
    receivedAt: epochMs('received_at').notNull(),
    processedAt: epochMs('processed_at').notNull(),
  },
  (t) => [
    index('events_payment_idx').on(t.paymentId, t.seq),
    index('events_outcome_idx').on(t.outcome, t.seq),
    index('events_received_idx').on(t.receivedAt),
  ],
);

/** Every change of a payment's state, in commit order (seq is the change feed's cursor). */
export const stateChanges = sqliteTable(
  'state_changes',
  {
    seq: integer('seq').primaryKey({ autoIncrement: true }),
    paymentId: text('payment_id')
      .notNull()
      .references(() => payments.id),
    eventSeq: integer('event_seq').references(() => events.seq),
    kind: text('kind', { enum: CHANGE_KINDS }).notNull().default('status'),
    fromStage: text('from_stage', { enum: STAGES }),
    toStage: text('to_stage', { enum: STAGES }).notNull(),
    fromStatusCode: integer('from_status_code'),
    toStatusCode: integer('to_status_code'),
    cause: text('cause').notNull(),
    at: epochMs('at').notNull(),
  },
  (t) => [index('state_changes_payment_idx').on(t.paymentId, t.seq)],
);

/** Refunds by refund id. A refund may arrive before its payment: it is linked once the payment is known. */
export const refunds = sqliteTable(
  'refunds',
  {
    id: text('id').primaryKey(),
    paymentId: text('payment_id').references(() => payments.id),
    paymentBase: text('payment_base').notNull(),
    merchantReference: text('merchant_reference'),
    amount: integer('amount'),
    currency: text('currency'),
    statusCode: integer('status_code').notNull(),
    status: text('status'),
    stage: text('stage', { enum: STAGES }).notNull(),
    rank: integer('rank').notNull(),
    changeTime: text('change_time'),
    updatedAt: epochMs('updated_at').notNull(),
  },
  (t) => [index('refunds_payment_idx').on(t.paymentId), index('refunds_base_idx').on(t.paymentBase)],
);

/** What a poll found that no webhook had said: both views, for a human and for the drift count. */
export const drifts = sqliteTable(
  'drifts',
  {
    seq: integer('seq').primaryKey({ autoIncrement: true }),
    paymentId: text('payment_id')
      .notNull()
      .references(() => payments.id),
    eventSeq: integer('event_seq').references(() => events.seq),
    ledgerView: text('ledger_view').notNull(),
    platformView: text('platform_view').notNull(),
    summary: text('summary').notNull(),
    at: epochMs('at').notNull(),
  },
  (t) => [index('drifts_payment_idx').on(t.paymentId)],
);

/** Who changed what through the on-call tools, and why. */
export const operatorActions = sqliteTable('operator_actions', {
  id: integer('id').primaryKey({ autoIncrement: true }),
  actor: text('actor').notNull(),
  reason: text('reason'),
  action: text('action').notNull(),
  target: text('target'),
  count: integer('count').notNull().default(0),
  dryRun: flag('dry_run').notNull().default(false),
  detailsJson: text('details_json'),
  at: epochMs('at').notNull(),
});

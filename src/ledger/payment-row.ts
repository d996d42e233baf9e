import { isConclusive, planNextCheck, type CheckPolicy } from './check-schedule';
import type { Decision } from './decide';
import type { EventRecord, Payment } from './ledger';
import { paymentBaseOf, type PaymentObservation } from './observation';
import type { Stage } from './status-table';

/** Stages past a capture: they imply one, even when the capture event itself arrives late and is superseded. */
const CAPTURED_LINE: readonly Stage[] = [
  'captured',
  'deletion_pending',
  'refund_pending',
  'refunded',
  'reversed',
];

/**
 * The payment row after an observation, computed in memory from the row held (undefined for a new payment).
 * Applied: the observed status, the captured total when it first reaches the captured line, and descriptive
 * fields the row lacked. Not applied: only those descriptive fields; the row as is when it lacks none.
 */
export function paymentAfter(
  held: Payment | undefined,
  observation: PaymentObservation,
  decision: Decision,
  source: EventRecord['source'],
  at: number,
): Payment {
  if (decision.verdict !== 'apply') {
    if (!held) throw new Error('decide() applies the first status of a payment');
    return withDescriptiveFields(held, observation);
  }
  const next = decision.next;
  const reachesCapture = CAPTURED_LINE.includes(next.stage) && (held?.capturedTotal ?? 0) === 0;
  const status = {
    statusCode: observation.statusCode,
    status: observation.status,
    statusCategory: observation.statusCategory,
    stage: next.stage,
    rank: next.rank,
    uncertain: next.uncertain,
    isAuthorized: observation.isAuthorized,
    isCancellable: observation.isCancellable,
    isRefundable: observation.isRefundable,
    errorsJson: observation.errorsJson,
    changeTime: observation.changeTime,
    lastSource: source,
    updatedAt: at,
    ...(reachesCapture ? { capturedTotal: observation.acquiredAmount ?? observation.amount ?? 0 } : {}),
  };
  return held
    ? { ...withDescriptiveFields(held, observation), ...status }
    : newPayment(
        {
          id: observation.paymentId,
          base: paymentBaseOf(observation.paymentId),
          merchantReference: observation.merchantReference,
          amount: observation.amount,
          currency: observation.currency,
          ...status,
        },
        at,
      );
}

/** Descriptive fields never change a payment's standing; take them from any event when the ledger lacks them. */
function withDescriptiveFields(held: Payment, observation: PaymentObservation): Payment {
  const merchantReference = held.merchantReference ?? observation.merchantReference;
  const amount = held.amount ?? observation.amount;
  const currency = held.currency ?? observation.currency;
  if (merchantReference === held.merchantReference && amount === held.amount && currency === held.currency)
    return held;
  return { ...held, merchantReference, amount, currency };
}

/** A payment row as first seen: the schema's defaults, then what is known. */
export function newPayment(
  known: Pick<Payment, 'id' | 'base' | 'stage' | 'rank'> & Partial<Payment>,
  at: number,
): Payment {
  return {
    merchantReference: null,
    amount: null,
    currency: null,
    statusCode: null,
    status: null,
    statusCategory: null,
    uncertain: false,
    isAuthorized: null,
    isCancellable: null,
    isRefundable: null,
    capturedTotal: 0,
    refundedTotal: 0,
    errorsJson: null,
    changeTime: null,
    lastSource: null,
    fulfilmentDueAt: null,
    registeredAt: null,
    releasedAt: null,
    reversedAfterRelease: false,
    nextCheckAt: null,
    checkAttempts: 0,
    staleAt: null,
    refundCheckAt: null,
    firstSeenAt: at,
    updatedAt: at,
    ...known,
  };
}

export interface NextCheckOptions {
  /** This observation is a poll: the ladder climbs one step, and a refund event's check is done. */
  polled?: boolean;
  /** A refund event was applied: ask the platform for its Operations soon. */
  refundEvent?: boolean;
}

function refundCheckAfter(payment: Payment, at: number, policy: CheckPolicy, options: NextCheckOptions) {
  if (options.refundEvent) return at + policy.refundRecheckMs;
  // Only a poll made once the refund's check was due answers it: one fetched before the refund may not know it.
  const answered = options.polled && payment.refundCheckAt !== null && payment.refundCheckAt <= at;
  return answered ? null : payment.refundCheckAt;
}

/**
 * Keeps nextCheckAt in step with the payment after every write: the sweep then reads only due rows. A poll
 * climbs the ladder one step; a conclusive status resets it. `stale`: the payment was just given up. The plan
 * reads only the status, the schedule, firstSeenAt and fulfilmentDueAt, never the totals or release flags.
 */
export function withNextCheck(
  payment: Payment,
  at: number,
  policy: CheckPolicy,
  options: NextCheckOptions = {},
): { payment: Payment; stale: boolean } {
  const checkAttempts = payment.checkAttempts + (options.polled ? 1 : 0);
  const refundCheckAt = refundCheckAfter(payment, at, policy, options);
  // A payment given up on that reaches a conclusive status after all no longer needs a human.
  const staleAt = isConclusive(payment) ? null : payment.staleAt;
  const plan = planNextCheck({ ...payment, checkAttempts, refundCheckAt, staleAt }, at, policy);
  const conclusive = plan.nextCheckAt === null && !plan.stale;
  const next = {
    nextCheckAt: plan.nextCheckAt,
    refundCheckAt,
    checkAttempts: conclusive ? 0 : checkAttempts,
    staleAt: plan.stale ? at : staleAt,
  };
  const same = (Object.keys(next) as (keyof typeof next)[]).every((key) => next[key] === payment[key]);
  return { payment: same ? payment : { ...payment, ...next }, stale: plan.stale };
}

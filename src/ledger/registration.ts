import { decideRelease, type ReleaseDecision, type ReleaseOn } from './fulfilment';
import type { Payment, PaymentRegistration } from './ledger';
import { paymentBaseOf } from './observation';
import type { CheckPolicy } from './check-schedule';
import { recordChange, savePayment, scheduleNextCheck } from './changes';
import { linkWaitingRefunds } from './refund-links';
import { newPayment } from './payment-row';
import { STAGE_INFO } from './status-table';
import { call, type Effect } from './store';

type RegisterOutcome =
  { outcome: 'registered' | 'already_registered' } | { outcome: 'conflict'; conflicts: string[] };

/**
 * Registration records what the shop expects; it never touches status. A payment a webhook created first
 * is completed with the registration, as long as nothing the platform said contradicts it.
 */
export function* register(
  registration: PaymentRegistration,
  at: number,
  policy: CheckPolicy,
): Effect<RegisterOutcome> {
  const held = yield* call('paymentById', registration.paymentId);
  if (!held) {
    const inserted = newPayment(
      {
        id: registration.paymentId,
        base: paymentBaseOf(registration.paymentId),
        merchantReference: registration.merchantReference,
        amount: registration.amount,
        currency: registration.currency,
        stage: 'expected',
        rank: STAGE_INFO.expected.rank,
        fulfilmentDueAt: registration.fulfilmentDueAt,
        registeredAt: at,
      },
      at,
    );
    yield* call('insertPayment', inserted);
    yield* recordRegistration(inserted.id, 'expected', null, at);
    const linked = yield* linkWaitingRefunds(inserted, at);
    const { payment } = yield* scheduleNextCheck(linked, at, policy);
    yield* savePayment(inserted, payment);
    return { outcome: 'registered' };
  }

  const conflicts: string[] = [];
  const compare = (field: string, heldValue: unknown, given: unknown) => {
    if (heldValue !== null && heldValue !== given) conflicts.push(field);
  };
  compare('merchantReference', held.merchantReference, registration.merchantReference);
  compare('amount', held.amount, registration.amount);
  compare('currency', held.currency, registration.currency);
  if (held.registeredAt !== null && registration.fulfilmentDueAtGiven) {
    compare('fulfilmentDueAt', held.fulfilmentDueAt, registration.fulfilmentDueAt);
  }
  if (conflicts.length) return { outcome: 'conflict', conflicts };
  if (held.registeredAt !== null) return { outcome: 'already_registered' };

  const registered = {
    ...held,
    merchantReference: registration.merchantReference,
    amount: registration.amount,
    currency: registration.currency,
    fulfilmentDueAt: registration.fulfilmentDueAt,
    registeredAt: at,
    updatedAt: at,
  };
  yield* recordRegistration(held.id, held.stage, held.statusCode, at);
  yield* savePayment(held, (yield* scheduleNextCheck(registered, at, policy)).payment);
  return { outcome: 'registered' };
}

function* recordRegistration(
  paymentId: string,
  stage: Payment['stage'],
  code: number | null,
  at: number,
): Effect<void> {
  yield* recordChange({
    paymentId,
    kind: 'registered',
    fromStage: stage,
    toStage: stage,
    fromStatusCode: code,
    toStatusCode: code,
    cause: 'registered by the shop',
    at,
  });
}

type ReleaseOutcome =
  | { outcome: 'released' | 'already_released' }
  | { outcome: 'not_releasable'; decision: ReleaseDecision }
  | { outcome: 'not_found' };

export function* release(paymentId: string, releaseOn: ReleaseOn, at: number): Effect<ReleaseOutcome> {
  const held = yield* call('paymentById', paymentId);
  if (!held) return { outcome: 'not_found' };
  if (held.releasedAt !== null) return { outcome: 'already_released' };
  const decision = decideRelease(held, releaseOn);
  if (!decision.releasable) return { outcome: 'not_releasable', decision };
  yield* call('updatePayment', held, { ...held, releasedAt: at, updatedAt: at });
  yield* recordChange({
    paymentId,
    kind: 'released',
    fromStage: held.stage,
    toStage: held.stage,
    fromStatusCode: held.statusCode,
    toStatusCode: held.statusCode,
    cause: `goods released (${decision.reason})`,
    at,
  });
  return { outcome: 'released' };
}

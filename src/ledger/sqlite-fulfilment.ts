import { eq } from 'drizzle-orm';
import { decideRelease, type ReleaseDecision, type ReleaseOn } from './fulfilment';
import type { PaymentRegistration } from './ledger';
import { paymentBaseOf } from './observation';
import { payments } from './schema';
import type { CheckPolicy } from './check-schedule';
import { recordChange, scheduleNextCheck } from './sqlite-changes';
import type { Db } from './sqlite-events';
import { linkWaitingRefunds } from './sqlite-refunds';
import { STAGE_INFO } from './status-table';

type RegisterOutcome =
  { outcome: 'registered' | 'already_registered' } | { outcome: 'conflict'; conflicts: string[] };

/**
 * Registration records what the shop expects; it never touches status. A payment a webhook created first
 * is completed with the registration, as long as nothing the platform said contradicts it.
 */
export function registerInTransaction(
  tx: Db,
  registration: PaymentRegistration,
  at: number,
  policy: CheckPolicy,
): RegisterOutcome {
  const held = tx.select().from(payments).where(eq(payments.id, registration.paymentId)).get();
  if (!held) {
    tx.insert(payments)
      .values({
        id: registration.paymentId,
        base: paymentBaseOf(registration.paymentId),
        merchantReference: registration.merchantReference,
        amount: registration.amount,
        currency: registration.currency,
        stage: 'expected',
        rank: STAGE_INFO.expected.rank,
        fulfilmentDueAt: registration.fulfilmentDueAt,
        registeredAt: at,
        firstSeenAt: at,
        updatedAt: at,
      })
      .run();
    recordRegistration(tx, registration.paymentId, 'expected', null, at);
    linkWaitingRefunds(tx, registration.paymentId, at);
    scheduleNextCheck(tx, registration.paymentId, at, policy);
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

  tx.update(payments)
    .set({
      merchantReference: registration.merchantReference,
      amount: registration.amount,
      currency: registration.currency,
      fulfilmentDueAt: registration.fulfilmentDueAt,
      registeredAt: at,
      updatedAt: at,
    })
    .where(eq(payments.id, held.id))
    .run();
  recordRegistration(tx, held.id, held.stage, held.statusCode, at);
  scheduleNextCheck(tx, held.id, at, policy);
  return { outcome: 'registered' };
}

function recordRegistration(
  tx: Db,
  paymentId: string,
  stage: typeof payments.$inferSelect.stage,
  code: number | null,
  at: number,
) {
  recordChange(tx, {
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

export function releaseInTransaction(
  tx: Db,
  paymentId: string,
  releaseOn: ReleaseOn,
  at: number,
): ReleaseOutcome {
  const held = tx.select().from(payments).where(eq(payments.id, paymentId)).get();
  if (!held) return { outcome: 'not_found' };
  if (held.releasedAt !== null) return { outcome: 'already_released' };
  const decision = decideRelease(held, releaseOn);
  if (!decision.releasable) return { outcome: 'not_releasable', decision };
  tx.update(payments).set({ releasedAt: at, updatedAt: at }).where(eq(payments.id, paymentId)).run();
  recordChange(tx, {
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

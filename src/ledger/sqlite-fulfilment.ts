import { eq } from 'drizzle-orm';
import { decideRelease, type ReleaseDecision, type ReleaseOn } from './fulfilment';
import type { PaymentRegistration } from './ledger';
import { paymentBaseOf } from './observation';
import { payments } from './schema';
import type { CheckPolicy } from './check-schedule';
import { recordChange, savePayment, scheduleNextCheck } from './sqlite-changes';
import type { Tx } from './sqlite-statements';
import { linkWaitingRefunds } from './sqlite-refunds';
import { STAGE_INFO } from './status-table';

type RegisterOutcome =
  { outcome: 'registered' | 'already_registered' } | { outcome: 'conflict'; conflicts: string[] };

/**
 * Registration records what the shop expects; it never touches status. A payment a webhook created first
 * is completed with the registration, as long as nothing the platform said contradicts it.
 */
export function registerInTransaction(
  tx: Tx,
  registration: PaymentRegistration,
  at: number,
  policy: CheckPolicy,
): RegisterOutcome {
  const held = tx.stmt.paymentById.get({ id: registration.paymentId });
  if (!held) {
    const inserted = tx.db
      .insert(payments)
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
      .returning()
      .get();
    recordRegistration(tx, inserted.id, 'expected', null, at);
    const linked = linkWaitingRefunds(tx, inserted, at);
    const { payment } = scheduleNextCheck(tx, linked, at, policy);
    savePayment(tx, inserted, payment);
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
  recordRegistration(tx, held.id, held.stage, held.statusCode, at);
  savePayment(tx, held, scheduleNextCheck(tx, registered, at, policy).payment);
  return { outcome: 'registered' };
}

function recordRegistration(
  tx: Tx,
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
  tx: Tx,
  paymentId: string,
  releaseOn: ReleaseOn,
  at: number,
): ReleaseOutcome {
  const held = tx.stmt.paymentById.get({ id: paymentId });
  if (!held) return { outcome: 'not_found' };
  if (held.releasedAt !== null) return { outcome: 'already_released' };
  const decision = decideRelease(held, releaseOn);
  if (!decision.releasable) return { outcome: 'not_releasable', decision };
  tx.db.update(payments).set({ releasedAt: at, updatedAt: at }).where(eq(payments.id, paymentId)).run();
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

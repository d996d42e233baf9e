import { STAGE_INFO, type Stage } from './status-table';

export interface CheckPolicy {
  /** Delays after each poll that found no conclusive status. @defaultValue 1m, 5m, 15m, 1h, 6h, 24h */
  ladderMs: readonly number[];
  /** The faster ladder for uncertain codes and operations still waiting on the acquirer. */
  fastLadderMs: readonly number[];
  /** How long before fulfilmentDueAt the first check happens. @defaultValue 1m */
  leadMs: number;
  /** Re-check after a refund event: partial refunds are only reliably totalled from Operations. */
  refundRecheckMs: number;
  /** After this long without a conclusive status the payment is marked stale for a human. @defaultValue 7d */
  giveUpMs: number;
}

const MINUTE = 60_000;
export const DEFAULT_CHECK_POLICY: CheckPolicy = {
  ladderMs: [1, 5, 15, 60, 360, 1440].map((m) => m * MINUTE),
  fastLadderMs: [0.5, 1, 5, 15, 60].map((m) => m * MINUTE),
  leadMs: MINUTE,
  refundRecheckMs: MINUTE,
  giveUpMs: 7 * 1440 * MINUTE,
};

/** Operations waiting on the acquirer: the platform will know soon, so ask soon. */
const WAITING_ON_ACQUIRER = new Set([61, 71, 81, 91, 99]);

export interface CheckFacts {
  stage: Stage;
  statusCode: number | null;
  uncertain: boolean;
  fulfilmentDueAt: number | null;
  firstSeenAt: number;
  /** Polls since the last conclusive status, this one included. */
  checkAttempts: number;
  staleAt: number | null;
  /** A poll a refund event asked for (see refundCheckAt in schema.ts). */
  refundCheckAt: number | null;
}

/** A final stage that is not uncertain: nothing left for the reconciler to find out. */
export function isConclusive(facts: Pick<CheckFacts, 'stage' | 'uncertain'>): boolean {
  return STAGE_INFO[facts.stage].final && !facts.uncertain;
}

export type CheckPlan = { nextCheckAt: number | null; stale: false } | { nextCheckAt: null; stale: true };

/**
 * When to ask the platform next. A conclusive status (a final stage, not uncertain) needs no check of its own;
 * a refund event's check (`refundCheckAt`) stands whatever the status, and the earlier of the two wins. Before
 * the first poll the check lands just before the goods are due; after each poll that found nothing conclusive
 * it climbs the ladder, faster for the uncertain and waiting codes.
 */
export function planNextCheck(facts: CheckFacts, now: number, policy: CheckPolicy): CheckPlan {
  if (facts.staleAt !== null) return { nextCheckAt: null, stale: false };
  const plan = planStatusCheck(facts, now, policy);
  if (facts.refundCheckAt === null) return plan;
  // The refund's poll comes first; giving up waits for it.
  const statusCheckAt = plan.stale ? null : plan.nextCheckAt;
  return { nextCheckAt: Math.min(statusCheckAt ?? Infinity, facts.refundCheckAt), stale: false };
}

function planStatusCheck(facts: CheckFacts, now: number, policy: CheckPolicy): CheckPlan {
  if (isConclusive(facts)) return { nextCheckAt: null, stale: false };
  if (now - facts.firstSeenAt >= policy.giveUpMs) return { nextCheckAt: null, stale: true };

  const step = (ladder: readonly number[]) =>
    ladder[Math.min(Math.max(facts.checkAttempts - 1, 0), ladder.length - 1)]!;
  let next =
    facts.checkAttempts === 0 && facts.fulfilmentDueAt !== null
      ? facts.fulfilmentDueAt - policy.leadMs
      : now + step(policy.ladderMs);
  if (facts.uncertain || (facts.statusCode !== null && WAITING_ON_ACQUIRER.has(facts.statusCode))) {
    next = Math.min(next, now + step(policy.fastLadderMs));
  }
  return { nextCheckAt: Math.max(next, now), stale: false };
}

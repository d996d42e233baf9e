import {
  ALLOWED_EXITS,
  classifyStatusCode,
  STAGE_INFO,
  type Classification,
  type Stage,
} from './status-table';

/** What the ledger holds for a payment (or a refund) that matters to the decision. */
export interface HeldStatus {
  statusCode: number | null;
  stage: Stage;
  rank: number;
  /** Platform change time, `yyyyMMddHHmmss`. */
  changeTime: string | null;
}

export interface ObservedStatus {
  statusCode: number;
  statusCategory: string | null;
  changeTime: string | null;
}

export type Decision =
  | { verdict: 'apply'; next: Classification; reason: string }
  | { verdict: 'duplicate'; reason: string }
  | { verdict: 'superseded'; reason: string };

/**
 * The ordering rule, as a pure function. Events arrive late, twice and out of order, so:
 * 1. an observation repeating the held statusCode and change time is a duplicate, whatever its envelope id;
 * 2. a final stage is left only along the platform's edges (captured → refund/deletion/chargeback);
 * 3. otherwise the later platform change time wins, and on equal (or missing) times the higher lifecycle rank
 *    (a refusal ranks just above the pending operation it ends, see StatusCodeInfo.answers).
 * Anything that loses is superseded and changes nothing, so the ledger never regresses.
 */
export function decide(held: HeldStatus | undefined, observed: ObservedStatus): Decision {
  const next = classifyStatusCode(observed.statusCode, observed.statusCategory);
  if (!held || held.statusCode === null) return { verdict: 'apply', next, reason: 'first status' };

  if (held.statusCode === observed.statusCode && held.changeTime === observed.changeTime) {
    return { verdict: 'duplicate', reason: `repeats statusCode ${held.statusCode} already held` };
  }

  if (STAGE_INFO[held.stage].final && next.stage !== held.stage) {
    if (!ALLOWED_EXITS[held.stage]?.includes(next.stage)) {
      return { verdict: 'superseded', reason: `final stage ${held.stage} cannot move to ${next.stage}` };
    }
  }

  if (held.changeTime && observed.changeTime && held.changeTime !== observed.changeTime) {
    return observed.changeTime > held.changeTime
      ? { verdict: 'apply', next, reason: 'later platform change time' }
      : { verdict: 'superseded', reason: `older than the held change time ${held.changeTime}` };
  }

  return next.rank > held.rank
    ? { verdict: 'apply', next, reason: `lifecycle rank ${next.rank} above ${held.rank}` }
    : { verdict: 'superseded', reason: `lifecycle rank ${next.rank} not above held ${held.rank}` };
}

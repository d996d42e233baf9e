import { readFileSync } from 'node:fs';
import path from 'node:path';
import {
  classifyStatusCode,
  decide,
  STAGE_INFO,
  STATUS_CODES,
  type HeldStatus,
  type ObservedStatus,
  type Stage,
} from '../../src/ledger';

/**
 * The statusCode table of shared/platform.md, row by row, with the lifecycle stage each row means. Written out
 * here rather than read from the code under test, so a code that goes missing or changes meaning fails.
 */
const PLATFORM_TABLE: ReadonlyArray<[code: number, stage: Stage]> = [
  [0, 'created'],
  [1, 'cancelled'],
  [2, 'rejected'],
  [4, 'pending_authorisation'],
  [46, 'pending_authorisation'],
  [5, 'authorised'],
  [50, 'pending_authorisation'],
  [51, 'pending_authorisation'],
  [52, 'pending_authorisation'],
  [55, 'pending_authorisation'],
  [56, 'authorised'],
  [57, 'rejected'],
  [59, 'manual_action'],
  [6, 'cancelled'],
  [61, 'cancellation_pending'],
  [62, 'cancellation_pending'],
  // The cancel failed: the payment stays authorised.
  [63, 'authorised'],
  [64, 'cancelled'],
  [7, 'cancelled'],
  [71, 'deletion_pending'],
  [72, 'deletion_pending'],
  // The deletion failed: the payment keeps its standing.
  [73, 'captured'],
  [74, 'cancelled'],
  [75, 'cancelled'],
  [8, 'refunded'],
  [81, 'refund_pending'],
  [82, 'refund_pending'],
  // The refund failed: the money stays captured.
  [83, 'captured'],
  [84, 'reversed'],
  [85, 'refunded'],
  [9, 'captured'],
  [91, 'capture_pending'],
  [92, 'capture_pending'],
  // The capture failed: the authorisation stands.
  [93, 'authorised'],
  [94, 'captured'],
  [95, 'captured'],
  [96, 'captured'],
  [99, 'capture_pending'],
];
const TABLE_CODES = PLATFORM_TABLE.map(([code]) => code);
const UNCERTAIN_CODES = [52, 62, 72, 82, 92];
/** Codes after which the payment does not move without a new merchant action (platform.md "final" = yes). */
const PAYMENT_FINAL_CODES = [1, 2, 6, 7, 8, 9, 57, 64, 74, 75, 84, 85, 95];
/** Codes that are explicitly not final in platform.md. */
const TRANSIENT_CODES = [0, 4, 46, 5, 50, 51, 52, 55, 56, 61, 62, 71, 72, 81, 82, 91, 92, 99];

const T1 = '20240105100000';
const T2 = '20240105100100';
const T3 = '20240105100200';

function held(statusCode: number, changeTime: string | null): HeldStatus {
  const { stage, rank } = classifyStatusCode(statusCode);
  return { statusCode, stage, rank, changeTime };
}

function observed(
  statusCode: number,
  changeTime: string | null,
  statusCategory: string | null = null,
): ObservedStatus {
  return { statusCode, statusCategory, changeTime };
}

describe('classifyStatusCode', () => {
  it('knows exactly the codes of the platform table', () => {
    const known = Object.keys(STATUS_CODES)
      .map(Number)
      .sort((a, b) => a - b);
    expect(known).toEqual([...TABLE_CODES].sort((a, b) => a - b));
  });

  /** The refusals that end a pending operation, and its stage: they rank just above it. */
  const REFUSAL_ANSWERS: Record<number, Stage> = {
    63: 'cancellation_pending',
    73: 'deletion_pending',
    83: 'refund_pending',
    93: 'capture_pending',
    94: 'refund_pending',
  };

  it.each(PLATFORM_TABLE)('maps statusCode %i to stage %s', (code, stage) => {
    const classification = classifyStatusCode(code);
    const answered = REFUSAL_ANSWERS[code];
    const rank = answered ? STAGE_INFO[answered].rank + 1 : STAGE_INFO[stage].rank;
    expect(classification).toMatchObject({ stage, known: true, rank });
  });

  it.each(TABLE_CODES)('flags statusCode %i as uncertain only when it is 52, 62, 72, 82 or 92', (code) => {
    expect(classifyStatusCode(code).uncertain).toBe(UNCERTAIN_CODES.includes(code));
  });

  it.each(PAYMENT_FINAL_CODES)('treats statusCode %i as final', (code) => {
    expect(classifyStatusCode(code).final).toBe(true);
  });

  it.each(TRANSIENT_CODES)('treats statusCode %i as not final', (code) => {
    expect(classifyStatusCode(code).final).toBe(false);
  });

  it.each([63, 73, 83, 93, 94, 96])(
    'never turns a refused operation (statusCode %i) into a failed payment',
    (code) => {
      expect(['authorised', 'captured']).toContain(classifyStatusCode(code).stage);
    },
  );

  describe('unknown codes', () => {
    it.each([1000, 42, 3, 10, 100, -1])(
      'puts statusCode %i in stage unknown, uncertain, not known',
      (code) => {
        expect(classifyStatusCode(code)).toEqual({
          stage: 'unknown',
          rank: 0,
          final: false,
          uncertain: true,
          known: false,
        });
      },
    );

    it('classifies every code outside the table (0..199) as unknown', () => {
      const stray = [];
      for (let code = 0; code < 200; code++) {
        if (TABLE_CODES.includes(code)) continue;
        const { stage, known } = classifyStatusCode(code, 'COMPLETED');
        if (stage !== 'unknown' || known) stray.push(code);
      }
      expect(stray).toEqual([]);
    });

    it.each<[string, Stage]>([
      ['CREATED', 'created'],
      ['PENDING_PAYMENT', 'pending_authorisation'],
      ['PENDING_CONNECT_OR_3RD_PARTY', 'pending_authorisation'],
      ['PENDING_MERCHANT', 'authorised'],
      ['COMPLETED', 'captured'],
      ['REFUNDED', 'refunded'],
      ['REVERSED', 'reversed'],
      ['UNSUCCESSFUL', 'rejected'],
    ])(
      'ranks an unknown code with statusCategory %s like stage %s, yet keeps it unknown',
      (category, like) => {
        expect(classifyStatusCode(1000, category)).toMatchObject({
          stage: 'unknown',
          rank: STAGE_INFO[like].rank,
          final: false,
          known: false,
        });
      },
    );

    it.each([null, undefined, 'SOMETHING_NEW'])(
      'ranks an unknown code with statusCategory %p lowest',
      (category) => {
        expect(classifyStatusCode(1000, category).rank).toBe(0);
      },
    );

    it('ignores statusCategory for a known code', () => {
      expect(classifyStatusCode(5, 'COMPLETED')).toMatchObject({ stage: 'authorised' });
    });
  });
});

describe('decide', () => {
  describe('first status', () => {
    it('applies the first observation of a payment', () => {
      const decision = decide(undefined, observed(5, T1));
      expect(decision).toMatchObject({ verdict: 'apply', next: { stage: 'authorised' } });
    });

    it('applies over a held row that has no statusCode yet', () => {
      const decision = decide(
        { statusCode: null, stage: 'created', rank: 0, changeTime: null },
        observed(0, T1),
      );
      expect(decision).toMatchObject({ verdict: 'apply', next: { stage: 'created' } });
    });
  });

  describe('duplicates', () => {
    it.each<[number, string | null]>([
      [0, T2],
      [5, T2],
      [9, T2],
      [8, T2],
      [2, T2],
      [93, T2],
      [1000, T2],
      [5, null],
    ])('treats statusCode %i at change time %p, already held, as a duplicate', (code, time) => {
      expect(decide(held(code, time), observed(code, time)).verdict).toBe('duplicate');
    });

    it('does not treat the same statusCode at another change time as a duplicate', () => {
      expect(decide(held(5, T2), observed(5, T3)).verdict).toBe('apply');
      expect(decide(held(5, T2), observed(5, T1)).verdict).toBe('superseded');
    });

    it('does not treat another statusCode at the same change time as a duplicate', () => {
      expect(decide(held(5, T2), observed(91, T2)).verdict).toBe('apply');
    });
  });

  describe('ordering by platform change time, then rank', () => {
    it.each<[string, number, string | null, number, string | null, 'apply' | 'superseded']>([
      ['a later change time wins', 5, T1, 91, T2, 'apply'],
      ['a later change time wins over a higher held rank', 91, T1, 5, T2, 'apply'],
      ['an older change time is superseded', 91, T2, 5, T1, 'superseded'],
      ['an older change time is superseded despite a higher rank', 5, T2, 91, T1, 'superseded'],
      ['an older created is superseded', 5, T2, 0, T1, 'superseded'],
      ['equal time: the higher rank wins', 5, T2, 91, T2, 'apply'],
      ['equal time: the higher rank wins (created → authorised)', 0, T2, 5, T2, 'apply'],
      ['equal time: a lower rank is superseded', 91, T2, 5, T2, 'superseded'],
      ['equal time: an equal rank is superseded (91 vs 92)', 91, T2, 92, T2, 'superseded'],
      ['equal time: an equal rank is superseded (61 vs 91)', 61, T2, 91, T2, 'superseded'],
      ['equal time: an equal rank is superseded (4 vs 46)', 4, T2, 46, T2, 'superseded'],
      ['equal time: a capture refusal ends its pending capture', 91, T2, 93, T2, 'apply'],
      ['equal time: a pending capture does not undo its refusal', 93, T2, 91, T2, 'superseded'],
      ['equal time: a refund refusal ends its pending refund', 81, T2, 83, T2, 'apply'],
      ['equal time: a pending refund does not undo its refusal', 83, T2, 81, T2, 'superseded'],
      ['missing times: a cancellation refusal ends its pending cancellation', 61, null, 63, null, 'apply'],
      ['missing times: a deletion refusal ends its pending deletion', 71, null, 73, null, 'apply'],
      ['missing times: the higher rank wins', 5, null, 91, null, 'apply'],
      ['missing times: a lower rank is superseded', 91, null, 5, null, 'superseded'],
      ['missing times: an equal rank is superseded', 91, null, 92, null, 'superseded'],
      ['held time missing: rank decides (higher)', 5, null, 91, T3, 'apply'],
      ['held time missing: rank decides (lower)', 91, null, 5, T3, 'superseded'],
      ['observed time missing: rank decides (higher)', 5, T2, 91, null, 'apply'],
      ['observed time missing: rank decides (lower)', 91, T2, 5, null, 'superseded'],
    ])('%s (held %i @ %p, observed %i @ %p)', (_name, heldCode, heldTime, code, time, verdict) => {
      expect(decide(held(heldCode, heldTime), observed(code, time)).verdict).toBe(verdict);
    });

    it('returns the classification of the observed code with an apply', () => {
      expect(decide(held(5, T1), observed(91, T2))).toMatchObject({
        verdict: 'apply',
        next: { stage: 'capture_pending', rank: STAGE_INFO.capture_pending.rank, known: true },
      });
    });
  });

  describe('final stages', () => {
    it.each<[number, number, Stage]>([
      [9, 81, 'refund_pending'],
      [9, 82, 'refund_pending'],
      [9, 8, 'refunded'],
      [9, 85, 'refunded'],
      [9, 84, 'reversed'],
      [9, 83, 'captured'],
    ])('lets a captured payment (%i) move to %i (%s) along an allowed edge', (heldCode, code, stage) => {
      expect(decide(held(heldCode, T1), observed(code, T2))).toMatchObject({
        verdict: 'apply',
        next: { stage },
      });
    });

    it.each<[string, number, number]>([
      ['captured → authorised', 9, 5],
      ['captured → capture refused (authorised)', 9, 93],
      ['captured → capture pending', 9, 91],
      ['captured → created', 9, 0],
      ['captured → rejected', 9, 2],
      ['refunded → authorised', 8, 5],
      ['refunded → captured', 8, 9],
      ['cancelled → authorised', 1, 5],
      ['cancelled → captured', 1, 9],
      ['authorised and cancelled → captured', 6, 9],
      ['payment deleted → captured', 7, 9],
      ['rejected → authorised', 2, 5],
      ['rejected → captured', 2, 9],
      ['rejected → created', 2, 0],
      ['rejected → pending authorisation', 2, 46],
      ['not OK with scheduled payments → authorised', 57, 5],
      ['reversed → captured', 84, 9],
    ])('supersedes %s even when newer', (_name, heldCode, code) => {
      expect(decide(held(heldCode, T1), observed(code, T2)).verdict).toBe('superseded');
      expect(decide(held(heldCode, null), observed(code, null)).verdict).toBe('superseded');
    });

    it('lets an authorised payment be cancelled', () => {
      expect(decide(held(5, T1), observed(6, T2))).toMatchObject({
        verdict: 'apply',
        next: { stage: 'cancelled' },
      });
    });
  });

  describe('refused operations keep the standing', () => {
    it('keeps a payment authorised when its capture is refused (93 after 91, later time)', () => {
      expect(decide(held(91, T1), observed(93, T2))).toMatchObject({
        verdict: 'apply',
        next: { stage: 'authorised' },
      });
    });

    it('keeps a payment captured when its refund is refused (83 after 81, later time)', () => {
      expect(decide(held(81, T1), observed(83, T2))).toMatchObject({
        verdict: 'apply',
        next: { stage: 'captured' },
      });
    });

    it('keeps a payment authorised when its cancellation is refused (63 after 61, later time)', () => {
      expect(decide(held(61, T1), observed(63, T2))).toMatchObject({
        verdict: 'apply',
        next: { stage: 'authorised' },
      });
    });

    it('keeps a captured payment captured when a refund is refused without a request seen (83 after 9)', () => {
      expect(decide(held(9, T1), observed(83, T2))).toMatchObject({
        verdict: 'apply',
        next: { stage: 'captured' },
      });
    });

    it('does not let an older refused capture undo a newer capture request', () => {
      expect(decide(held(91, T2), observed(93, T1)).verdict).toBe('superseded');
    });
  });

  describe('unknown codes', () => {
    it.each<[number, string | null]>([
      [1000, 'COMPLETED'],
      [1000, 'PENDING_MERCHANT'],
      [1000, 'REFUNDED'],
      [1000, null],
      [42, 'COMPLETED'],
      [42, 'REVERSED'],
    ])('applies statusCode %i (%p) over an authorised payment as stage unknown', (code, category) => {
      const decision = decide(held(5, T1), observed(code, T2, category));
      expect(decision).toMatchObject({ verdict: 'apply', next: { stage: 'unknown', known: false } });
    });

    it('never classifies an unknown code as captured or authorised, whatever its statusCategory', () => {
      const categories = [
        'CREATED',
        'UNSUCCESSFUL',
        'PENDING_PAYMENT',
        'PENDING_MERCHANT',
        'PENDING_CONNECT_OR_3RD_PARTY',
        'COMPLETED',
        'REVERSED',
        'REFUNDED',
        null,
      ];
      for (const category of categories) {
        const decision = decide(undefined, observed(1000, T1, category));
        expect(decision.verdict === 'apply' && decision.next.stage).toBe('unknown');
      }
    });

    it('orders an unknown code by its statusCategory on equal change times', () => {
      // COMPLETED ranks like captured: above an authorised payment, so it is taken (as unknown, not captured).
      expect(decide(held(5, T2), observed(1000, T2, 'COMPLETED')).verdict).toBe('apply');
      // CREATED ranks lowest: below authorised, so it loses.
      expect(decide(held(5, T2), observed(1000, T2, 'CREATED')).verdict).toBe('superseded');
    });

    it('does not let an unknown code leave a captured payment', () => {
      expect(decide(held(9, T1), observed(1000, T2, 'COMPLETED')).verdict).toBe('superseded');
    });

    it('lets a known later code replace an unknown one', () => {
      const unknown: HeldStatus = { statusCode: 1000, stage: 'unknown', rank: 40, changeTime: T1 };
      expect(decide(unknown, observed(9, T2))).toMatchObject({
        verdict: 'apply',
        next: { stage: 'captured' },
      });
    });
  });

  it('gives a reason with every verdict', () => {
    const decisions = [
      decide(undefined, observed(5, T1)),
      decide(held(5, T1), observed(5, T1)),
      decide(held(9, T1), observed(5, T2)),
      decide(held(91, T2), observed(5, T1)),
    ];
    for (const decision of decisions) expect(decision.reason).toEqual(expect.any(String));
    expect(decisions.map((d) => d.verdict)).toEqual(['apply', 'duplicate', 'superseded', 'superseded']);
  });
});

describe('the refusal-rank migrations', () => {
  const MIGRATIONS = ['drizzle/0004_refusal_rank.sql', 'drizzle/pg/0001_refusal_rank.sql'];

  it.each(MIGRATIONS)('%s sets, for payments and refunds, the rank classifyStatusCode gives', (file) => {
    const sql = readFileSync(path.join(__dirname, '../..', file), 'utf8');
    const updates = sql.split('--> statement-breakpoint');
    expect(updates.map((update) => update.match(/UPDATE "(\w+)"/)?.[1])).toEqual(['payments', 'refunds']);
    for (const update of updates) {
      const pairs = [...update.matchAll(/WHEN (\d+) THEN (\d+)/g)].map(([, code, rank]) => [
        Number(code),
        Number(rank),
      ]);
      expect(pairs).toEqual([63, 73, 83, 93, 94].map((code) => [code, classifyStatusCode(code).rank]));
    }
  });
});

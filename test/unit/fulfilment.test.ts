import { classifyDecline, decideRelease, type ReleaseFacts, type Stage } from '../../src/ledger';

const facts = (stage: Stage, overrides: Partial<ReleaseFacts> = {}): ReleaseFacts => ({
  stage,
  uncertain: false,
  refundedTotal: 0,
  errorsJson: null,
  ...overrides,
});

describe('decideRelease', () => {
  it.each<[Stage, 'captured' | 'authorized', boolean, string]>([
    ['captured', 'captured', true, 'captured'],
    ['captured', 'authorized', true, 'captured'],
    ['authorised', 'captured', false, 'awaiting_capture'],
    ['authorised', 'authorized', true, 'authorised'],
    ['expected', 'captured', false, 'awaiting_payment'],
    ['created', 'authorized', false, 'awaiting_authorisation'],
    ['pending_authorisation', 'authorized', false, 'awaiting_authorisation'],
    ['capture_pending', 'captured', false, 'capture_pending'],
    ['refund_pending', 'captured', false, 'refund_pending'],
    ['refunded', 'captured', false, 'payment_refunded'],
    ['cancelled', 'authorized', false, 'payment_cancelled'],
    ['reversed', 'captured', false, 'payment_reversed'],
    ['rejected', 'authorized', false, 'payment_refused'],
    ['manual_action', 'authorized', false, 'manual_action_required'],
    ['unknown', 'authorized', false, 'unknown_status_code'],
    ['deletion_pending', 'captured', false, 'deletion_pending'],
    ['cancellation_pending', 'authorized', false, 'cancellation_pending'],
  ])('%s with RELEASE_ON=%s → releasable %s (%s)', (stage, releaseOn, releasable, reason) => {
    expect(decideRelease(facts(stage), releaseOn)).toMatchObject({ releasable, reason });
  });

  it('never releases an uncertain status, even a captured one', () => {
    expect(decideRelease(facts('captured', { uncertain: true }), 'captured')).toEqual({
      releasable: false,
      reason: 'status_uncertain',
    });
  });

  it('holds back a captured payment with money refunded', () => {
    expect(decideRelease(facts('captured', { refundedTotal: 100 }), 'captured').releasable).toBe(false);
  });

  it('gives a refused payment its first platform error code and category', () => {
    const errorsJson = JSON.stringify([{ errorCode: '30511001', id: 'x' }, { errorCode: '40001134' }]);
    expect(decideRelease(facts('rejected', { errorsJson }), 'captured')).toEqual({
      releasable: false,
      reason: 'payment_refused',
      errorCode: '30511001',
      declineCategory: 'insufficient_funds',
    });
  });

  it('calls a refused payment without errors a plain decline', () => {
    expect(decideRelease(facts('rejected'), 'captured')).toMatchObject({ declineCategory: 'declined' });
  });
});

describe('classifyDecline', () => {
  it.each([
    ['30511001', 'insufficient_funds'],
    ['30591001', 'fraud'],
    ['30411001', 'fraud'],
    ['30541001', 'expired_or_invalid_card'],
    ['30141001', 'expired_or_invalid_card'],
    ['30911001', 'issuer_unreachable'],
    ['30031001', 'setup_error'],
    ['40001134', 'three_d_secure_failure'],
    ['30051001', 'declined'],
    ['99999999', 'declined'],
  ])('%s → %s', (errorCode, category) => {
    expect(classifyDecline({ errorCode })).toBe(category);
  });
});

import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseWebhookBody, zWebhookEvent } from '../../schemas';

const FIXTURES = path.join(__dirname, '../fixtures');

function fixtureJson(file: string): Record<string, unknown> {
  return JSON.parse(readFileSync(path.join(FIXTURES, file), 'utf8')) as Record<string, unknown>;
}

function event(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    apiVersion: 'v1',
    id: 'evt-1',
    type: 'payment.captured',
    created: '2023-01-23T09:51:27.9529667+01:00',
    merchantId: 'MyPSPID',
    payment: { id: '3254564310_0', statusOutput: { statusCode: 9 } },
    ...overrides,
  };
}

describe('parseWebhookBody', () => {
  it('accepts a bare event object', () => {
    const result = parseWebhookBody(event());
    expect(result).toEqual({ ok: true, events: [event()] });
  });

  it('accepts an array of two events, in order', () => {
    const second = event({ id: 'evt-2', payment: undefined, refund: { id: '3254564310_1' } });
    const result = parseWebhookBody([event(), second]);
    expect(result.ok && result.events.map((e) => e.id)).toEqual(['evt-1', 'evt-2']);
  });

  it('accepts a repeated id inside one array (de-duplicated downstream)', () => {
    const result = parseWebhookBody([event(), event()]);
    expect(result.ok && result.events).toHaveLength(2);
  });

  it('accepts an unknown event type', () => {
    const result = parseWebhookBody(event({ type: 'payment.something_new' }));
    expect(result.ok && result.events[0]?.type).toBe('payment.something_new');
  });

  it('keeps unknown keys, top-level and inside the payload', () => {
    const input = event({ extra: { a: 1 }, payment: { id: 'p', brandNew: true } });
    const result = parseWebhookBody(input);
    expect(result.ok && result.events[0]).toEqual(input);
  });

  it('accepts an event whose own keys collide with the result shape (ok, error)', () => {
    const input = event({ ok: false, error: 'x' });
    expect(parseWebhookBody(input)).toEqual({ ok: true, events: [input] });
  });

  it('accepts each payload kind alone (payout, token, paymentLink)', () => {
    for (const kind of ['payout', 'token', 'paymentLink']) {
      expect(parseWebhookBody(event({ payment: undefined, [kind]: { id: 'x' } })).ok).toBe(true);
    }
  });

  it.each([
    'plugin-magento-core_stub_webhook_payment.pending_capture.json',
    'plugin-magento-core_stub_webhook_refund.refund_requested.json',
  ])('accepts the Magento stub %s', (file) => {
    const json = fixtureJson(file);
    const result = parseWebhookBody(json);
    expect(result).toEqual({ ok: true, events: [json] });
  });

  it('accepts the SDK valid body', () => {
    expect(parseWebhookBody(fixtureJson('sdk-java_webhooks_helper-valid-body')).ok).toBe(true);
  });

  describe('rejects …', () => {
    it('an empty array', () => {
      expect(parseWebhookBody([])).toMatchObject({ ok: false, error: 'invalid_envelope' });
    });

    it('an array of more than 100 events', () => {
      const many = Array.from({ length: 101 }, (_, i) => event({ id: `evt-${i}` }));
      expect(parseWebhookBody(many)).toMatchObject({ ok: false, error: 'invalid_envelope' });
    });

    it('apiVersion v0 (the SDK fixture) as unsupported_api_version, naming the version', () => {
      const result = parseWebhookBody(fixtureJson('sdk-dotnet_WebhooksHelperTest_BadVersionJson.body'));
      expect(result).toEqual({
        ok: false,
        error: 'unsupported_api_version',
        message: expect.stringContaining('"v0"'),
      });
    });

    it('apiVersion v2 inside an array, naming the index', () => {
      const result = parseWebhookBody([event(), event({ apiVersion: 'v2' })]);
      expect(result).toEqual({
        ok: false,
        error: 'unsupported_api_version',
        message: expect.stringMatching(/^events\[1\]: .*"v2"/),
      });
    });

    it('a missing apiVersion as invalid_envelope', () => {
      const result = parseWebhookBody(event({ apiVersion: undefined }));
      expect(result).toMatchObject({
        ok: false,
        error: 'invalid_envelope',
        message: expect.stringMatching(/^apiVersion: /),
      });
    });

    it('a missing id, naming the field', () => {
      const result = parseWebhookBody(event({ id: undefined }));
      expect(result).toMatchObject({
        ok: false,
        error: 'invalid_envelope',
        message: expect.stringMatching(/^id: /),
      });
    });

    it('an id with a lone surrogate (stored as other characters), naming the field', () => {
      const result = parseWebhookBody(event({ id: 'evt-\ud800' }));
      expect(result).toMatchObject({
        ok: false,
        error: 'invalid_envelope',
        message: expect.stringMatching(/^id: not well-formed Unicode text/),
      });
      expect(parseWebhookBody(event({ id: 'evt-😀' }))).toMatchObject({ ok: true });
    });

    it('a type or merchantId with a lone surrogate: both are stored and filtered on, naming the field', () => {
      for (const field of ['type', 'merchantId']) {
        expect(parseWebhookBody(event({ [field]: 'payment.\udc00captured' }))).toMatchObject({
          ok: false,
          error: 'invalid_envelope',
          message: expect.stringMatching(new RegExp(`^${field}: not well-formed Unicode text`)),
        });
        expect(parseWebhookBody(event({ [field]: 'payment.😀' }))).toMatchObject({ ok: true });
      }
    });

    it('a missing merchantId inside an array, naming index and field', () => {
      const result = parseWebhookBody([event(), event({ merchantId: undefined })]);
      expect(result).toMatchObject({
        ok: false,
        message: expect.stringMatching(/^events\[1\]\.merchantId: /),
      });
    });

    it('an empty id', () => {
      expect(parseWebhookBody(event({ id: '' }))).toMatchObject({ ok: false, error: 'invalid_envelope' });
    });

    it('an id longer than 128 characters', () => {
      expect(parseWebhookBody(event({ id: 'x'.repeat(129) }))).toMatchObject({
        ok: false,
        error: 'invalid_envelope',
      });
    });

    it('an envelope without a payload object', () => {
      const result = parseWebhookBody(fixtureJson('sdk-java_webhooks_valid-body'));
      expect(result).toEqual({
        ok: false,
        error: 'invalid_envelope',
        message: 'envelope has no payload object (payment, refund, payout, token or paymentLink)',
      });
    });

    it('a payload that is not an object', () => {
      const result = parseWebhookBody(event({ payment: [1, 2] }));
      expect(result).toMatchObject({ ok: false, message: expect.stringMatching(/^payment: /) });
    });

    it.each([
      ['a number', 42],
      ['a string', 'hello'],
      ['null', null],
      ['an array holding a number', [1]],
    ])('%s as invalid_envelope', (_name, json) => {
      expect(parseWebhookBody(json)).toMatchObject({ ok: false, error: 'invalid_envelope' });
    });
  });
});

describe('zWebhookEvent', () => {
  it('leaves apiVersion to the caller (any string passes the schema)', () => {
    expect(zWebhookEvent.safeParse(event({ apiVersion: 'v0' })).success).toBe(true);
  });
});

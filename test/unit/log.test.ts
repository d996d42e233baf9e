import fs from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';
import fc from 'fast-check';
import winston from 'winston';
import { createLogger, scrubForLog, type Logger } from '../../src/log';

const FIXTURES = path.join(__dirname, '../fixtures');

const PAN = '4111111111111111';
const SPACED_PAN = '4111 1111 1111 1111';
const MASKED_PAN = '************1111';
const WEBHOOK_SECRET = 'hello+world';
const SIGNATURE = '2S7doBj/GnJnacIjSJzr5fxGM5xmfQyFAwxv1I53ZEk=';
const AUTHORIZATION = 'GCS v1HMAC:dummy-key-id:c5aNDw4AUxRChVwJfGpS7jvxNxwsI7nhbs1Zgpde+Y0=';
const CARD_TOKEN = 'a856de2a-3ce8-4113-a873-7ae5218e18bc';
const SECURITY_CODE = '737';
const FORGED_LINE = '{"level":"error","message":"forged entry"}';
const SECRETS = [WEBHOOK_SECRET, SIGNATURE, AUTHORIZATION, CARD_TOKEN, 'AAABBEg0VhI0VniQEjRWAAAAAAA='];

interface PendingCaptureEvent {
  id: string;
  type: string;
  payment: {
    id: string;
    paymentOutput: {
      references: Record<string, string>;
      cardPaymentMethodSpecificOutput: Record<string, unknown> & { card: Record<string, unknown> };
    };
  };
}

function loadPendingCapture(): PendingCaptureEvent {
  const file = path.join(FIXTURES, 'plugin-magento-core_stub_webhook_payment.pending_capture.json');
  return JSON.parse(fs.readFileSync(file, 'utf8')) as PendingCaptureEvent;
}

/** The real pending_capture webhook, salted with everything that must never reach a log. */
function buildHostileDelivery() {
  const event = loadPendingCapture();
  const output = event.payment.paymentOutput;
  Object.assign(output.cardPaymentMethodSpecificOutput.card, {
    cardNumber: PAN,
    cardSecurityCode: SECURITY_CODE,
  });
  output.cardPaymentMethodSpecificOutput.token = CARD_TOKEN;
  output.references.merchantReference = `test01\r\n${FORGED_LINE}`;
  output.references.descriptor = `refund to card ${SPACED_PAN} requested`;
  return {
    headers: {
      Authorization: AUTHORIZATION,
      'X-GCS-Signature': SIGNATURE,
      'X-GCS-KeyId': 'dummy-key-id',
    },
    webhook: { secret: WEBHOOK_SECRET, keyId: 'dummy-key-id' },
    event,
  };
}

function scrubToText(value: unknown): string {
  return JSON.stringify(scrubForLog(value));
}

/** A logger whose only transport resolves with the first line it writes. */
function captureFirstLine(json: boolean): { log: Logger; line: Promise<string> } {
  let resolveLine: (line: string) => void = () => {};
  const line = new Promise<string>((resolve) => (resolveLine = resolve));
  const stream = new Writable({
    write(chunk, _encoding, done) {
      resolveLine(String(chunk));
      done();
    },
  });
  const log = createLogger({ level: 'info', json });
  log.clear().add(new winston.transports.Stream({ stream }));
  return { log, line };
}

async function logHostileDelivery(json: boolean): Promise<string> {
  const { log, line } = captureFirstLine(json);
  const delivery = buildHostileDelivery();
  log.info('webhook accepted', { eventId: delivery.event.id, ...delivery });
  return line;
}

describe('scrubForLog', () => {
  describe('redacts secrets', () => {
    it('redacts an authorization header whatever its case', () => {
      expect(scrubForLog({ Authorization: AUTHORIZATION, authorization: AUTHORIZATION })).toEqual({
        Authorization: '[redacted]',
        authorization: '[redacted]',
      });
    });

    it('redacts the X-GCS-Signature header', () => {
      expect(scrubForLog({ 'X-GCS-Signature': SIGNATURE })).toEqual({ 'X-GCS-Signature': '[redacted]' });
    });

    it('redacts webhook secrets and key rings nested in configuration', () => {
      const config = { webhook: { secret: WEBHOOK_SECRET, keyRing: { 'dummy-key-id': WEBHOOK_SECRET } } };

      expect(scrubToText(config)).not.toContain(WEBHOOK_SECRET);
    });

    it('redacts secret-named keys in any spelling', () => {
      const keys = ['secretApiKey', 'apiKey', 'password', 'webhookKeys', 'set-cookie', 'accessToken', 'pin'];

      expect(scrubForLog(Object.fromEntries(keys.map((key) => [key, 's3cr3t'])))).toEqual(
        Object.fromEntries(keys.map((key) => [key, '[redacted]'])),
      );
    });

    it('redacts card tokens, hosted tokenization ids and the card security code', () => {
      const card = {
        token: CARD_TOKEN,
        hostedTokenizationId: CARD_TOKEN,
        cvv: SECURITY_CODE,
        cvc: SECURITY_CODE,
      };

      expect(scrubForLog(card)).toEqual({
        token: '[redacted]',
        hostedTokenizationId: '[redacted]',
        cvv: '[redacted]',
        cvc: '[redacted]',
      });
    });

    it('keeps an absent secret visibly absent', () => {
      expect(scrubForLog({ authorization: undefined, token: null })).toEqual({
        authorization: undefined,
        token: null,
      });
    });

    it('keeps key ids, expiry dates, BINs and words that only look like secret names', () => {
      const fields = { keyId: 'dummy-key-id', expiryDate: '1226', bin: '375418', shippingAddress: 'Main St' };

      expect(scrubForLog(fields)).toEqual(fields);
    });
  });

  describe('masks card numbers', () => {
    it('keeps only the last four digits of a card number field', () => {
      expect(scrubForLog({ cardNumber: PAN, pan: SPACED_PAN })).toEqual({
        cardNumber: MASKED_PAN,
        pan: '**** **** **** 1111',
      });
    });

    it('leaves an already masked card number as it is', () => {
      expect(scrubForLog({ cardNumber: '***********7346' })).toEqual({ cardNumber: '***********7346' });
    });

    it('masks a Luhn-valid PAN inside a free-text field', () => {
      expect(scrubForLog({ note: `paid with ${SPACED_PAN} today` })).toEqual({
        note: `paid with ${MASKED_PAN} today`,
      });
    });

    it('masks a dash-separated PAN inside a nested array', () => {
      expect(scrubForLog({ lines: [['card 4111-1111-1111-1111']] })).toEqual({
        lines: [[`card ${MASKED_PAN}`]],
      });
    });

    it('masks a PAN that follows a stray digit group', () => {
      expect(scrubForLog(`qty 1 ${SPACED_PAN}`)).toBe(`qty 1 ${MASKED_PAN}`);
    });

    it('masks a PAN given as a number', () => {
      expect(scrubForLog({ reference: Number(PAN) })).toEqual({ reference: MASKED_PAN });
    });

    it('keeps a long digit run that fails the Luhn check', () => {
      expect(scrubForLog('ref 4111111111111112')).toBe('ref 4111111111111112');
    });

    it('keeps payment ids and 20-digit references', () => {
      const ids = { paymentId: '3254564310_0', reference: '00000200000143570012' };

      expect(scrubForLog(ids)).toEqual(ids);
    });

    it('masks a 13-digit PAN, the shortest card number', () => {
      expect(scrubForLog('card 4222222222222')).toBe('card *********2222');
    });

    it('keeps a 12-digit run even when it passes the Luhn check', () => {
      expect(scrubForLog('ref 411111111117')).toBe('ref 411111111117');
    });

    it('keeps a 20-digit reference even when it passes the Luhn check', () => {
      expect(scrubForLog('00000200000143570016')).toBe('00000200000143570016');
    });
  });

  // Most lines carry ids, outcomes and counts: scrubForLog returns those without scanning them for card numbers.
  describe('takes the short way only where nothing can need masking', () => {
    // Written out, not derived from the implementation's character class.
    const ESCAPED: Record<string, string> = {
      '\n': '\\n',
      '\r': '\\r',
      '\t': '\\t',
      '\u0000': '\\u0000',
      '\u001b': '\\u001b',
      '\u007f': '\\u007f',
      '\u0085': '\\u0085',
      '\u009b': '\\u009b',
      '\u2028': '\\u2028',
      '\u2029': '\\u2029',
    };
    const escaped = (text: string) => [...text].map((character) => ESCAPED[character] ?? character).join('');
    const digitsIn = (text: string) => text.replace(/\D/g, '').length;
    const characters = fc.constantFrom(...'0123456789 -_abcXYZ*.٣', ...Object.keys(ESCAPED));

    it('keeps text with fewer than 13 digits, only escaping control characters', () => {
      fc.assert(
        fc.property(fc.string({ unit: characters, maxLength: 40 }), (text) => {
          fc.pre(digitsIn(text) < 13);
          expect(scrubForLog(text)).toBe(escaped(text));
        }),
        { numRuns: 2_000 },
      );
    });

    it('masks a card number wherever it sits, whatever surrounds it', () => {
      const pans = [
        '4222222222222',
        '4111111111111111',
        '5555555555554444',
        '378282246310005',
        '6011000990139424',
      ];
      const text = fc.string({ unit: characters, maxLength: 30 });
      fc.assert(
        fc.property(text, fc.constantFrom(...pans), text, (before, pan, after) => {
          const scrubbed = scrubForLog(`${before}x${pan}x${after}`) as string;
          expect(scrubbed).not.toContain(pan);
          expect(scrubbed).toContain(`x${'*'.repeat(pan.length - 4)}${pan.slice(-4)}x`);
        }),
        { numRuns: 2_000 },
      );
    });

    it('returns integers of up to 12 digits as they are, and masks a longer one that is a card number', () => {
      fc.assert(
        fc.property(fc.integer({ min: -999_999_999_999, max: 999_999_999_999 }), (n) => {
          expect(scrubForLog({ count: n })).toEqual({ count: n });
        }),
      );
      expect(scrubForLog({ count: 4222222222222 })).toEqual({ count: '*********2222' });
      expect(scrubForLog({ count: -4222222222222 })).toEqual({ count: '-*********2222' });
      expect(scrubForLog({ count: -4111111111111111 })).toEqual({ count: '-************1111' });
    });

    it('still redacts and masks new field names once a thousand others have been seen', () => {
      for (let i = 0; i < 1_100; i++) scrubForLog({ [`field${i}`]: i });
      expect(scrubForLog({ Session_TOKEN: 'abc', PRIMARY_ACCOUNT_NUMBER: PAN })).toEqual({
        Session_TOKEN: '[redacted]',
        PRIMARY_ACCOUNT_NUMBER: MASKED_PAN,
      });
    });

    it('redacts a secret-named field every time, not only the first time its name is seen', () => {
      for (let i = 0; i < 3; i++)
        expect(scrubForLog({ webhookSecret: WEBHOOK_SECRET, eventId: `evt-${i}` })).toEqual({
          webhookSecret: '[redacted]',
          eventId: `evt-${i}`,
        });
    });
  });

  describe('prevents forged log lines', () => {
    it('escapes CR and LF in a string value', () => {
      expect(scrubForLog({ merchantReference: `test01\r\n${FORGED_LINE}` })).toEqual({
        merchantReference: `test01\\r\\n${FORGED_LINE}`,
      });
    });

    it('escapes other control characters such as terminal escapes', () => {
      expect(scrubForLog('red\u001b[31m\u2028')).toBe('red\\u001b[31m\\u2028');
    });

    it('escapes control characters in keys', () => {
      expect(Object.keys(scrubForLog({ 'a\nb': 1 }) as object)).toEqual(['a\\nb']);
    });
  });

  describe('copies safely', () => {
    it('does not modify its input', () => {
      const delivery = buildHostileDelivery();
      const before = structuredClone(delivery);

      scrubForLog(delivery);

      expect(delivery).toEqual(before);
    });

    it('replaces a cycle with a marker', () => {
      const node: Record<string, unknown> = { name: 'root' };
      node.self = node;

      expect(scrubForLog(node)).toEqual({ name: 'root', self: '[circular]' });
    });

    it('copies an object shared by two fields twice rather than calling it a cycle', () => {
      const amount = { amount: 1500, currencyCode: 'EUR' };

      expect(scrubForLog({ ordered: amount, captured: amount })).toEqual({
        ordered: amount,
        captured: amount,
      });
    });

    it('keeps error name, message, stack and reason, scrubbed', () => {
      const error = Object.assign(new TypeError(`card ${PAN} refused`), { reason: 'card_refused' });

      const scrubbed = scrubForLog(error) as Record<string, unknown>;

      expect(scrubbed).toMatchObject({
        name: 'TypeError',
        message: `card ${MASKED_PAN} refused`,
        reason: 'card_refused',
      });
      expect(scrubbed.stack).toEqual(expect.stringContaining(`TypeError: card ${MASKED_PAN} refused\\n`));
    });

    it('summarises a raw body by its size', () => {
      expect(scrubForLog({ rawBody: Buffer.from(PAN) })).toEqual({ rawBody: '[16 bytes]' });
    });
  });

  describe('the real pending_capture webhook with hostile additions', () => {
    it('contains no secret', () => {
      const text = scrubToText(buildHostileDelivery());

      for (const secret of SECRETS) expect(text).not.toContain(secret);
    });

    it('contains no full PAN', () => {
      const text = scrubToText(buildHostileDelivery());

      expect(text).not.toMatch(/4111[ -]?1111[ -]?1111[ -]?1111/);
    });

    it('keeps the fields needed to follow the payment', () => {
      const scrubbed = scrubForLog(buildHostileDelivery());

      expect(scrubbed).toMatchObject({
        headers: { 'X-GCS-KeyId': 'dummy-key-id' },
        webhook: { keyId: 'dummy-key-id' },
        event: {
          id: '0e3ce18a-3e5d-4c77-999e-f20ddb5ec6f9',
          type: 'payment.pending_capture',
          payment: {
            id: '3254564310_0',
            status: 'PENDING_CAPTURE',
            statusOutput: { statusCode: 5, statusCategory: 'PENDING_MERCHANT' },
            paymentOutput: {
              amountOfMoney: { amount: 1500, currencyCode: 'EUR' },
              cardPaymentMethodSpecificOutput: {
                card: { cardNumber: MASKED_PAN, expiryDate: '1226', bin: '375418' },
              },
            },
          },
        },
      });
    });
  });
});

describe('createLogger', () => {
  describe('in JSON mode', () => {
    it('writes one JSON line carrying the message and the non-secret fields', async () => {
      const line = await logHostileDelivery(true);

      expect(JSON.parse(line)).toMatchObject({
        level: 'info',
        message: 'webhook accepted',
        eventId: '0e3ce18a-3e5d-4c77-999e-f20ddb5ec6f9',
        event: { payment: { id: '3254564310_0' } },
        timestamp: expect.any(String),
      });
    });

    it('never writes a secret', async () => {
      const line = await logHostileDelivery(true);

      for (const secret of SECRETS) expect(line).not.toContain(secret);
    });

    it('never writes a full PAN', async () => {
      const line = await logHostileDelivery(true);

      expect(line).not.toMatch(/4111[ -]?1111[ -]?1111[ -]?1111/);
    });

    it('escapes CR and LF inside a field, so even the decoded value cannot forge a line', async () => {
      const line = await logHostileDelivery(true);

      expect(JSON.parse(line).event.payment.paymentOutput.references.merchantReference).toBe(
        `test01\\r\\n${FORGED_LINE}`,
      );
    });

    it('scrubs the message as well as the fields', async () => {
      const { log, line } = captureFirstLine(true);

      log.info(`card ${PAN}\nforged`);

      expect(JSON.parse(await line)).toMatchObject({ message: `card ${MASKED_PAN}\\nforged` });
    });

    it('scrubs an Error logged as metadata', async () => {
      const { log, line } = captureFirstLine(true);

      log.error('payment refused', { error: new Error(`card ${PAN} refused`) });

      expect(JSON.parse(await line)).toMatchObject({ error: { message: `card ${MASKED_PAN} refused` } });
    });

    it('does not modify the object handed to the logger', async () => {
      const { log, line } = captureFirstLine(true);
      const entry = { message: 'webhook accepted', authorization: AUTHORIZATION };

      log.info(entry);
      await line;

      expect(entry.authorization).toBe(AUTHORIZATION);
    });

    it('drops entries below the configured level', async () => {
      const { log, line } = captureFirstLine(true);

      log.debug('webhook body parsed');
      log.info('webhook accepted');

      expect(JSON.parse(await line)).toMatchObject({ message: 'webhook accepted' });
    });

    it('below debug, a debug call never reaches winston, from the logger, a child or detached', () => {
      const { log } = captureFirstLine(true);
      const write = jest.spyOn(log, 'write');
      const { debug } = log;

      log.debug('status event processed', { eventId: 'evt-1' });
      log.child({ worker: 'status' }).debug('status event processed');
      debug('webhook accepted');
      log.info('webhook accepted');

      expect(write).toHaveBeenCalledTimes(1);
    });

    it('writes a detached debug call once the level is debug', async () => {
      const { log, line } = captureFirstLine(true);
      const { debug } = log;

      log.level = 'debug';
      debug('webhook accepted', { eventId: 'evt-1' });

      expect(JSON.parse(await line)).toMatchObject({ level: 'debug', message: 'webhook accepted' });
    });

    it("writes a child logger's debug entries with the child's fields", async () => {
      const { log, line } = captureFirstLine(true);

      log.level = 'debug';
      log.child({ worker: 'status' }).debug('status event processed', { eventId: 'evt-1' });

      expect(JSON.parse(await line)).toMatchObject({ message: 'status event processed', worker: 'status' });
    });

    it('writes debug entries, scrubbed, once the level is debug', async () => {
      const { log, line } = captureFirstLine(true);

      log.level = 'debug';
      log.debug('status event processed', { eventId: 'evt-1', authorization: AUTHORIZATION });

      expect(JSON.parse(await line)).toMatchObject({
        level: 'debug',
        message: 'status event processed',
        eventId: 'evt-1',
        authorization: '[redacted]',
      });
    });
  });

  describe('in readable mode', () => {
    it('writes a single line with the message and fields', async () => {
      const line = await logHostileDelivery(false);

      expect(line).toContain('webhook accepted');
      expect(line).toContain('"eventId":"0e3ce18a-3e5d-4c77-999e-f20ddb5ec6f9"');
    });

    it('never writes a secret', async () => {
      const line = await logHostileDelivery(false);

      for (const secret of SECRETS) expect(line).not.toContain(secret);
    });

    it('never writes a full PAN', async () => {
      const line = await logHostileDelivery(false);

      expect(line).not.toMatch(/4111[ -]?1111[ -]?1111[ -]?1111/);
    });

    it('never writes a raw CR or LF inside the line', async () => {
      const line = await logHostileDelivery(false);

      expect(line.replace(/\r?\n$/, '')).not.toMatch(/[\r\n]/);
    });
  });
});

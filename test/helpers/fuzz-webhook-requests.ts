import fc from 'fast-check';
import { KEY_RING_SPEC } from './build-web';
import { hmac, paymentEvent } from './deliveries';
import { receivedHeader, type FuzzRequest } from './fuzz-client';

/**
 * Hostile deliveries for POST /webhooks, one arbitrary per kind of bad input. Each is built to be refused and
 * checked against an independent model of what would pass (the key ring, the HMAC computed here with
 * node:crypto, the envelope rules as the README states them), so a sample that happens to be valid is dropped
 * rather than sent. The server must run with `maxBodyBytes` = {@link WEBHOOK_MAX_BODY}.
 */

export const WEBHOOK_MAX_BODY = 16 * 1024;

/** The key ring build-web configures, split on the first ':' as the README specifies. */
export const KEYS: ReadonlyMap<string, string> = new Map(
  KEY_RING_SPEC.split(',').map((entry) => {
    const colon = entry.indexOf(':');
    return [entry.slice(0, colon), entry.slice(colon + 1)] as const;
  }),
);

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

const PAYLOAD_KEYS = ['payment', 'refund', 'payout', 'token', 'paymentLink'];
const REQUIRED_KEYS = ['apiVersion', 'id', 'type', 'created', 'merchantId'];

const isPlainObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);
const isText = (value: unknown, max = Infinity) =>
  typeof value === 'string' && value.length >= 1 && value.length <= max;

/** True when `value` meets every rule the README gives for one event, i.e. it would be accepted. */
function couldBeValidEvent(value: unknown): boolean {
  if (!isPlainObject(value) || value.apiVersion !== 'v1') return false;
  if (!isText(value.id, 128) || !isText(value.type, 128)) return false;
  if (!isText(value.created) || !isText(value.merchantId)) return false;
  const present = PAYLOAD_KEYS.filter((key) => Object.hasOwn(value, key));
  return present.length > 0 && present.every((key) => isPlainObject(value[key]));
}

function couldBeValidBody(value: unknown): boolean {
  if (!Array.isArray(value)) return couldBeValidEvent(value);
  return value.length >= 1 && value.length <= 100 && value.every(couldBeValidEvent);
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/** The bytes decode as strict UTF-8 and parse as JSON: what the receiver needs before the envelope. */
function parsesAsUtf8Json(bytes: Buffer): boolean {
  try {
    JSON.parse(strictUtf8.decode(bytes));
    return true;
  } catch {
    return false;
  }
}

// ---- building blocks ------------------------------------------------------------------------------------

/** Characters Node's client lets into a header value: HTAB, visible ASCII and space, obs-text (0x80-0xFF). */
export const headerChar = fc
  .oneof(
    { weight: 6, arbitrary: fc.integer({ min: 0x20, max: 0x7e }) },
    { weight: 2, arbitrary: fc.integer({ min: 0x80, max: 0xff }) },
    { weight: 1, arbitrary: fc.constant(0x09) },
  )
  .map((code) => String.fromCharCode(code));

export const headerText = (maxLength = 64) => fc.string({ unit: headerChar, maxLength });

/** Long header values, kept under Node's 16 KiB header block (beyond it Node answers before the app). */
export const longHeaderText = fc
  .tuple(fc.integer({ min: 1_000, max: 8_000 }), headerText(8))
  .map(([length, unit]) => (unit === '' ? 'A' : unit).repeat(length).slice(0, length));

const template = paymentEvent({ eventId: 'fuzz-template' });

/** A valid event: the vendor's stub with a fresh event id, payment id and status code. */
const validEvent: fc.Arbitrary<JsonObject> = fc
  .record({
    id: fc.stringMatching(/^[a-z0-9-]{1,36}$/),
    paymentId: fc.stringMatching(/^[0-9]{1,10}_[0-9]$/),
    statusCode: fc.constantFrom(2, 5, 9, 91, 95, 99),
  })
  .map(({ id, paymentId, statusCode }) => {
    const event = structuredClone(template) as JsonObject;
    event.id = id;
    const payment = event.payment as JsonObject;
    payment.id = paymentId;
    (payment.statusOutput as JsonObject).statusCode = statusCode;
    return event;
  });

/** One valid event, or an array of a few, compact or pretty-printed. */
const validValue: fc.Arbitrary<JsonObject | JsonObject[]> = fc
  .tuple(fc.array(validEvent, { minLength: 1, maxLength: 3 }), fc.boolean())
  .map(([events, asArray]) => (asArray || events.length > 1 ? events : events[0]!));

const toBytes = (value: unknown, pretty = false) => Buffer.from(JSON.stringify(value, null, pretty ? 2 : 0));

const validBody: fc.Arbitrary<Buffer> = fc
  .tuple(validValue, fc.boolean())
  .map(([value, pretty]) => toBytes(value, pretty));

const keyId = fc.constantFrom(...KEYS.keys());

type Expectation = Pick<FuzzRequest, 'expect' | 'errors' | 'chunked'>;

function delivery(
  category: string,
  body: Buffer,
  headers: FuzzRequest['headers'],
  expectation: Expectation,
): FuzzRequest {
  return { category, method: 'POST', path: '/webhooks', headers, body, ...expectation };
}

/** Headers as the platform sends them. */
function platformHeaders(id: string, signature: string): Array<[string, string]> {
  return [
    ['content-type', 'application/json'],
    ['x-gcs-keyid', id],
    ['x-gcs-signature', signature],
  ];
}

/** Signed correctly over `body` with `id`'s secret: refused only for what the body holds. */
const signedWith = (category: string, expectation: Expectation) => (body: fc.Arbitrary<Buffer>) =>
  fc
    .tuple(body, keyId, fc.boolean())
    .map(([bytes, id, chunked]) =>
      delivery(category, bytes, platformHeaders(id, hmac(bytes, KEYS.get(id)!)), { chunked, ...expectation }),
    );

/** True when the server would see a known key id and a signature matching `body` under its secret. */
function wouldVerify(headers: FuzzRequest['headers'], body: Buffer): boolean {
  const id = receivedHeader(headers, 'x-gcs-keyid');
  const secret = id === undefined ? undefined : KEYS.get(id);
  return secret !== undefined && receivedHeader(headers, 'x-gcs-signature') === hmac(body, secret);
}

// ---- categories ----------------------------------------------------------------------------------------

/** Inserts, deletes or replaces a few characters of valid JSON text. */
const mangledJsonText = fc
  .tuple(
    validBody,
    fc.array(
      fc.record({
        at: fc.nat(),
        remove: fc.nat({ max: 8 }),
        insert: fc.oneof(
          fc.constantFrom('', '{', '}', '[', ']', ',', ':', '"', '\\', "'", 'NaN', '\u0000', '\n', '/*'),
          fc.string({ maxLength: 4 }),
        ),
      }),
      { minLength: 1, maxLength: 3 },
    ),
  )
  .map(([body, edits]) => {
    let text = body.toString();
    for (const { at, remove, insert } of edits) {
      const i = at % (text.length + 1);
      text = text.slice(0, i) + insert + text.slice(i + remove);
    }
    return text;
  });

const jsonLikeJunk = fc.constantFrom(
  '',
  ' ',
  '{',
  '[',
  '{"id":',
  'nul',
  'tru',
  'NaN',
  'Infinity',
  '-',
  '01',
  '1e',
  '.5',
  'undefined',
  "{'apiVersion':'v1'}",
  '{"a":1,}',
  '[1,]',
  '{"a" 1}',
  '"unterminated',
  '"bad \\x escape"',
  '/* comment */ {}',
  '{}{}',
  '[] []',
  '\u0000',
  '\ufeff\ufeff{}',
);

/** Signed correctly, but the bytes are not JSON. */
export const malformedJson = signedWith('webhook malformed JSON', {
  expect: [400],
  errors: ['invalid_json'],
})(
  fc
    .oneof(mangledJsonText, jsonLikeJunk, fc.string({ maxLength: 200, unit: 'binary' }))
    .map((text) => Buffer.from(text))
    .filter((bytes) => !parsesAsUtf8Json(bytes)),
);

/**
 * A valid body cut short. Signed over the cut bytes it is refused as JSON (a prefix of a JSON object or
 * array never parses); sent with the whole body's signature it is refused as tampered.
 */
export const truncatedBody: fc.Arbitrary<FuzzRequest> = fc
  .tuple(validBody, fc.nat(), keyId, fc.boolean(), fc.boolean())
  .map(([whole, cut, id, resignCut, chunked]) => {
    const bytes = whole.subarray(0, cut % whole.length);
    const secret = KEYS.get(id)!;
    return resignCut
      ? delivery('webhook truncated body', bytes, platformHeaders(id, hmac(bytes, secret)), {
          chunked,
          expect: [400],
          errors: ['invalid_json'],
        })
      : delivery('webhook truncated body', bytes, platformHeaders(id, hmac(whole, secret)), {
          chunked,
          expect: [401],
          errors: ['invalid_signature'],
        });
  });

/** Over the limit: a valid, correctly signed body padded with whitespace, or filler bytes. */
export const oversizedBody: fc.Arbitrary<FuzzRequest> = fc
  .tuple(
    validBody,
    fc.oneof(
      { weight: 4, arbitrary: fc.integer({ min: WEBHOOK_MAX_BODY + 1, max: 4 * WEBHOOK_MAX_BODY }) },
      { weight: 1, arbitrary: fc.integer({ min: 4 * WEBHOOK_MAX_BODY, max: 16 * WEBHOOK_MAX_BODY }) },
    ),
    fc.constantFrom('padded JSON', 'filler', 'binary'),
    fc.integer({ min: 0, max: 255 }),
    keyId,
    fc.boolean(),
  )
  .map(([valid, size, kind, byte, id, chunked]) => {
    const bytes =
      kind === 'padded JSON'
        ? Buffer.concat([valid, Buffer.alloc(Math.max(0, size - valid.length), ' ')])
        : kind === 'filler'
          ? Buffer.alloc(size, 'a')
          : Buffer.alloc(size, byte);
    return delivery('webhook oversized body', bytes, platformHeaders(id, hmac(bytes, KEYS.get(id)!)), {
      chunked,
      expect: [413],
      errors: ['payload_too_large'],
    });
  });

/** A known key id with a signature that is not the body's: random text, near misses, other encodings. */
export const wrongSignature: fc.Arbitrary<FuzzRequest> = fc
  .tuple(validBody, keyId, fc.nat())
  .chain(([body, id, pick]) => {
    const secret = KEYS.get(id)!;
    const digest = Buffer.from(hmac(body, secret), 'base64');
    const right = digest.toString('base64');
    const otherSecret = [...KEYS.values()].find((s) => s !== secret)!;
    const flipped = (text: string, at: number) => {
      const i = at % text.length;
      const c = text[i]!;
      return text.slice(0, i) + (c === 'A' ? 'B' : 'A') + text.slice(i + 1);
    };
    const signature = fc.oneof(
      fc.base64String({ minLength: 4, maxLength: 64 }),
      headerText(80),
      longHeaderText,
      fc.constantFrom(
        digest.toString('hex'),
        digest.toString('base64url'),
        right.replace(/=+$/, ''),
        right.toLowerCase(),
        right.toUpperCase(),
        `sha256=${right}`,
        `v1,${right}`,
        `${right}${right}`,
        right.slice(0, 20),
        hmac(body, otherSecret),
        hmac(body, `${secret} `),
        hmac(body, secret.toUpperCase()),
        Buffer.from(right).toString('base64'),
      ),
      fc.nat().map((at) => flipped(right, at + pick)),
    );
    return signature.map((sig) => ({ body, id, sig }));
  })
  .map(({ body, id, sig }) =>
    delivery('webhook wrong signature', body, platformHeaders(id, sig), { expect: [401] }),
  )
  .filter((request) => !wouldVerify(request.headers, request.body!));

/** Signed with the right key, but over other bytes than those sent. */
export const signatureOfOtherBytes: fc.Arbitrary<FuzzRequest> = fc
  .tuple(
    validValue,
    validValue,
    fc.nat(),
    fc.constantFrom('newline', 'space', 'flip', 'pretty', 'other', 'id', 'empty'),
  )
  .map(([value, other, at, change]) => {
    const sent = toBytes(value);
    const flipped = Buffer.from(sent);
    flipped[at % sent.length] = sent[at % sent.length]! ^ 0x01;
    const signedBytes = {
      newline: () => Buffer.concat([sent, Buffer.from('\n')]),
      space: () => Buffer.concat([Buffer.from(' '), sent]),
      flip: () => flipped,
      pretty: () => toBytes(value, true),
      other: () => toBytes(other),
      id: () => Buffer.from(sent.toString().replace('"id":"', '"id":"x')),
      empty: () => Buffer.alloc(0),
    }[change]();
    return { sent, signedBytes };
  })
  .filter(({ sent, signedBytes }) => !sent.equals(signedBytes))
  .chain(({ sent, signedBytes }) =>
    keyId.map((id) =>
      delivery(
        'webhook signature of other bytes',
        sent,
        platformHeaders(id, hmac(signedBytes, KEYS.get(id)!)),
        {
          expect: [401],
          errors: ['invalid_signature'],
        },
      ),
    ),
  );

/** A key id the ring does not hold, with a signature that would be right under a real key. */
export const unknownKeyId: fc.Arbitrary<FuzzRequest> = fc
  .tuple(
    validBody,
    keyId,
    fc.oneof(
      headerText(40),
      longHeaderText,
      fc.constantFrom(
        'KEY-NEW',
        'Key-New',
        'key-ne',
        'key-new2',
        'key_new',
        'key-new\u00a0',
        'k\u00e9y-new',
        'key-old,key-new',
        'key-new, key-new',
        'key-new;',
        '"key-new"',
        'new:secret==',
        'key-new:new:secret==',
        'null',
        'undefined',
        '*',
      ),
    ),
  )
  .map(([body, realId, id]) =>
    delivery('webhook unknown key id', body, platformHeaders(id, hmac(body, KEYS.get(realId)!)), {
      expect: [401],
      errors: ['unknown_key_id', 'missing_key_id'],
    }),
  )
  .filter((request) => !wouldVerify(request.headers, request.body!));

type HeaderList = Array<[string, string]>;
type Mangle = (headers: HeaderList) => fc.Arbitrary<HeaderList>;

const GCS_NAMES = ['x-gcs-signature', 'x-gcs-keyid'] as const;
const gcsName = fc.constantFrom(...GCS_NAMES);
const junkValue = fc.oneof(
  fc.constantFrom('', ' ', '\t', '  \t  ', ',', ', ', 'null'),
  headerText(40),
  longHeaderText,
);
const valueOf = (headers: HeaderList, name: string) => headers.find(([n]) => n === name)?.[1] ?? '';
const without = (headers: HeaderList, name: string) => headers.filter(([n]) => n !== name);

const mangles: Mangle[] = [
  // missing
  (headers) => gcsName.map((name) => without(headers, name)),
  (headers) => fc.constant(headers.filter(([n]) => !n.startsWith('x-gcs-'))),
  // duplicated: two header lines, which the server joins with ", "
  (headers) => gcsName.map((name) => [...headers, [name, valueOf(headers, name)]]),
  (headers) =>
    fc.tuple(gcsName, junkValue, fc.boolean()).map(([name, junk, before]) => {
      const rest = without(headers, name);
      const line: [string, string] = [name, valueOf(headers, name)];
      return before ? [...rest, [name, junk], line] : [...rest, line, [name, junk]];
    }),
  // joined by the sender
  (headers) =>
    fc
      .tuple(gcsName, fc.constantFrom(', ', ',', ' , ', '; '))
      .map(([name, sep]) => [
        ...without(headers, name),
        [name, `${valueOf(headers, name)}${sep}${valueOf(headers, name)}`],
      ]),
  // replaced: empty, whitespace, very long, non-ASCII, random
  (headers) => fc.tuple(gcsName, junkValue).map(([name, junk]) => [...without(headers, name), [name, junk]]),
  // padded or wrapped in characters that are not optional whitespace
  (headers) =>
    fc
      .tuple(gcsName, fc.constantFrom('"', "'", '\u00a0', '\u00ff', '<', '=', '.'), fc.boolean())
      .map(([name, wrap, both]) => [
        ...without(headers, name),
        [name, `${wrap}${valueOf(headers, name)}${both ? wrap : ''}`],
      ]),
  // the two values swapped between the headers
  (headers) =>
    fc.constant([
      ...headers.filter(([n]) => !n.startsWith('x-gcs-')),
      ['x-gcs-keyid', valueOf(headers, 'x-gcs-signature')],
      ['x-gcs-signature', valueOf(headers, 'x-gcs-keyid')],
    ] as HeaderList),
  // look-alike names that are other headers
  (headers) =>
    fc
      .tuple(
        gcsName,
        fc.constantFrom(
          'x-gcs-signatures',
          'x-gcs-key-id',
          'x_gcs_signature',
          'gcs-signature',
          'x-gcs-keyid2',
          'signature',
        ),
      )
      .map(([name, other]) => [...without(headers, name), [other, valueOf(headers, name)]]),
  // a content encoding the body does not have (the receiver must not inflate junk or accept unknown codings)
  (headers) =>
    fc
      .constantFrom('gzip', 'deflate', 'br', 'x-gzip', 'compress', 'gzip, gzip', 'zstd', 'chunked', '*')
      .map((coding) => [...headers, ['content-encoding', coding]]),
];

/** A validly signed delivery with its headers damaged in one or two ways, in random header-name case. */
export const mangledHeaders: fc.Arbitrary<FuzzRequest> = fc
  .tuple(validBody, keyId, fc.array(fc.nat({ max: mangles.length - 1 }), { minLength: 1, maxLength: 2 }))
  .chain(([body, id, picks]) => {
    let headers: fc.Arbitrary<HeaderList> = fc.constant(platformHeaders(id, hmac(body, KEYS.get(id)!)));
    for (const pick of picks) headers = headers.chain(mangles[pick]!);
    return fc.tuple(fc.constant(body), headers, fc.array(fc.boolean(), { minLength: 8, maxLength: 8 }));
  })
  .map(([body, headers, upper]) => ({
    body,
    headers: headers.map(([name, value], i): [string, string] => [
      upper[i % upper.length] ? name.toUpperCase() : name,
      value,
    ]),
  }))
  .filter(({ body, headers }) => {
    const coding = receivedHeader(headers, 'content-encoding')?.toLowerCase();
    return !(wouldVerify(headers, body) && (coding === undefined || coding === '' || coding === 'identity'));
  })
  .map(({ body, headers }) =>
    delivery('webhook mangled headers', body, headers, { expect: [400, 401, 415] }),
  );

/** Signed, valid in every way but apiVersion (another string, a near miss, another type, absent). */
export const wrongApiVersion = signedWith('webhook wrong apiVersion', {
  expect: [400],
  errors: ['unsupported_api_version', 'invalid_envelope'],
})(
  fc
    .tuple(
      fc.array(validEvent, { minLength: 1, maxLength: 4 }),
      fc.nat(),
      fc.oneof(
        fc.string({ maxLength: 40 }),
        fc.constantFrom(
          'V1',
          'v2',
          'v0',
          ' v1',
          'v1 ',
          'v1\u0000',
          'v01',
          '1',
          'v',
          '',
          'v1.0',
          'v\u0031\u200b',
        ),
        fc.constantFrom<Json>(1, 1.0, null, true, false, ['v1'], { v: 1 }),
        fc.constant(undefined),
      ),
      fc.boolean(),
    )
    .filter(([, , version]) => version !== 'v1')
    .map(([events, at, version, asArray]) => {
      const target = events[at % events.length]!;
      if (version === undefined) delete target.apiVersion;
      else target.apiVersion = version;
      return toBytes(asArray || events.length > 1 ? events : target);
    }),
);

const invalidUtf8 = fc.constantFrom(
  [0xff],
  [0xfe],
  [0x80],
  [0xbf],
  [0xc0, 0x80],
  [0xc1, 0xbf],
  [0xc3],
  [0xe2, 0x82],
  [0xed, 0xa0, 0x80],
  [0xed, 0xbf, 0xbf],
  [0xf0, 0x9f, 0x98],
  [0xf4, 0x90, 0x80, 0x80],
  [0xf8, 0x88, 0x80, 0x80, 0x80],
  [0xe0, 0x80, 0xaf],
);

/** Signed, but not UTF-8: stray or overlong bytes, surrogates, UTF-16, Latin-1 text. */
export const nonUtf8 = signedWith('webhook non-UTF-8', { expect: [400], errors: ['invalid_json'] })(
  fc
    .oneof(
      fc
        .tuple(validBody, fc.array(fc.tuple(fc.nat(), invalidUtf8), { minLength: 1, maxLength: 3 }))
        .map(([body, inserts]) => {
          let bytes = body;
          for (const [at, seq] of inserts) {
            const i = at % (bytes.length + 1);
            bytes = Buffer.concat([bytes.subarray(0, i), Buffer.from(seq), bytes.subarray(i)]);
          }
          return bytes;
        }),
      fc.tuple(validBody, fc.constantFrom('utf16le', 'utf16be', 'utf16le+bom')).map(([body, encoding]) => {
        const le = Buffer.from(body.toString(), 'utf16le');
        if (encoding === 'utf16le') return le;
        if (encoding === 'utf16le+bom') return Buffer.concat([Buffer.from([0xff, 0xfe]), le]);
        return Buffer.from(le).swap16();
      }),
      validEvent.map((event) => {
        event.merchantId = 'Müller & Søn';
        return Buffer.from(JSON.stringify(event), 'latin1');
      }),
    )
    .filter((bytes) => !parsesAsUtf8Json(bytes)),
);

const junkJson: fc.Arbitrary<Json> = fc.jsonValue({ maxDepth: 3 }) as fc.Arbitrary<Json>;

/** Breaks one field of a valid event: removed, emptied, too long, or of another type. */
const brokenEvent: fc.Arbitrary<JsonObject> = fc
  .tuple(
    validEvent,
    fc.constantFrom(...REQUIRED_KEYS.filter((key) => key !== 'apiVersion'), 'payloads', 'payment'),
    fc.oneof(
      fc.constant(undefined),
      fc.constantFrom<Json>('', 'x'.repeat(129), 0, 1, -1, 1.5, null, true, [], {}, ['id'], { id: 'x' }),
    ),
  )
  .map(([event, key, value]) => {
    if (key === 'payloads') {
      // no payload object at all, or every payload key holding something that is not an object
      for (const name of PAYLOAD_KEYS) delete event[name];
      if (value !== undefined) event.payment = value;
    } else if (value === undefined) delete event[key];
    else event[key] = value;
    return event;
  });

/** A deeply nested value, up to a depth that still fits the size limit. */
const deepNesting: fc.Arbitrary<string> = fc
  .tuple(fc.integer({ min: 10, max: 2_500 }), fc.constantFrom('array', 'object', 'payment'))
  .map(([depth, kind]) => {
    if (kind === 'array') return '['.repeat(depth * 2) + ']'.repeat(depth * 2);
    const nested = '{"a":'.repeat(depth) + '1' + '}'.repeat(depth);
    // A deep payment under an envelope without an id: deep data must not make an invalid envelope pass.
    return kind === 'object'
      ? nested
      : `{"apiVersion":"v1","type":"payment.created","created":"c","merchantId":"m","payment":${nested}}`;
  });

/** Signed JSON of the wrong shape: primitives, junk arrays, random objects, deep nesting, broken events. */
export const wrongShape = signedWith('webhook wrong shape', {
  expect: [400],
  errors: ['invalid_envelope', 'unsupported_api_version'],
})(
  fc
    .oneof(
      fc
        .oneof(
          fc.integer(),
          fc.double({ noNaN: true, noDefaultInfinity: true }),
          fc.string(),
          fc.boolean(),
          fc.constant(null),
        )
        .map((v) => JSON.stringify(v)),
      fc.array(junkJson, { maxLength: 20 }).map((v) => JSON.stringify(v)),
      fc.object({ maxDepth: 3 }).map((v) => JSON.stringify(v)),
      fc.constantFrom('{}', '[]', '[{}]', '[null]', '[[]]', '{"payment":{}}', '"v1"'),
      deepNesting,
      brokenEvent.map((v) => JSON.stringify(v)),
      fc.tuple(fc.array(validEvent, { maxLength: 5 }), brokenEvent, fc.nat()).map(([events, broken, at]) => {
        events.splice(at % (events.length + 1), 0, broken);
        return JSON.stringify(events);
      }),
    )
    .map((text) => Buffer.from(text))
    .filter((bytes) => bytes.length <= WEBHOOK_MAX_BODY && parsesAsUtf8Json(bytes))
    .filter((bytes) => !couldBeValidBody(JSON.parse(bytes.toString()))),
);

/** Signed arrays of 101 to 150 events, each valid on its own (minimal events, to stay under the size limit). */
export const tooManyEvents = signedWith('webhook over 100 events', {
  expect: [400],
  errors: ['invalid_envelope'],
})(
  fc.integer({ min: 101, max: 150 }).map((count) =>
    toBytes(
      Array.from({ length: count }, (_, i) => ({
        apiVersion: 'v1',
        id: `e${i}`,
        type: 'payment.created',
        created: 'c',
        merchantId: 'm',
        token: {},
      })),
    ),
  ),
);

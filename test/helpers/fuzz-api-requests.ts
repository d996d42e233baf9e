import querystring from 'node:querystring';
import fc from 'fast-check';
import { zChangesQuery, zPaymentsQuery, zRegisterPaymentBody } from '../../schemas';
import { API_TOKEN } from './build-web';
import { receivedHeader, type FuzzRequest } from './fuzz-client';
import { headerText, longHeaderText } from './fuzz-webhook-requests';

/**
 * Hostile requests for the fulfilment API. Every sample is made invalid: bodies and query strings that the
 * route's own zod schema would accept (read the way express.json and Express's "simple" query parser read
 * them) are dropped, so with an empty ledger every answer must be a 4xx and nothing may be written.
 */

/** Bodies over this are refused with 413 by express.json on POST /v1/payments. */
export const REGISTRATION_MAX_BODY = 16 * 1024;
export const API_TOKENS = [API_TOKEN, 'test-token-2'];

const auth: [string, string] = ['authorization', `Bearer ${API_TOKEN}`];
const jsonType = fc.constantFrom(
  'application/json',
  'application/json; charset=utf-8',
  'Application/JSON',
  'application/json;charset=UTF-8',
);

const utf8 = new TextDecoder('utf-8'); // lenient and BOM-stripping, as body-parser decodes

/** True when express.json + zRegisterPaymentBody would accept these bytes sent as UTF-8 JSON. */
function registers(bytes: Buffer): boolean {
  try {
    return zRegisterPaymentBody.safeParse(JSON.parse(utf8.decode(bytes))).success;
  } catch {
    return false;
  }
}

const registration = fc.record(
  {
    paymentId: fc.stringMatching(/^[A-Za-z0-9_-]{1,64}$/),
    merchantReference: fc.string({ minLength: 1, maxLength: 128 }),
    amount: fc.nat(),
    currency: fc.stringMatching(/^[A-Z]{3}$/),
    fulfilmentDueAt: fc
      .date({ min: new Date('2000-01-01'), max: new Date('2100-01-01'), noInvalidDate: true })
      .map((date) => date.toISOString()),
  },
  { requiredKeys: ['paymentId', 'merchantReference', 'amount', 'currency'] },
);

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** A registration with one field removed, blanked, out of range, of another type, or one key too many. */
const brokenRegistration = fc
  .tuple(
    registration,
    fc.constantFrom('paymentId', 'merchantReference', 'amount', 'currency', 'fulfilmentDueAt', 'extra'),
    fc.oneof(
      fc.constant(undefined),
      fc.constantFrom<Json>('', ' ', 'has space', 'x'.repeat(129), 'eur', 'EURO', 'tomorrow'),
      fc.constantFrom<Json>(-1, 1.5, 1e300, 2 ** 53, -0.0001, 0, null, true, [], {}, ['EUR']),
      fc.constantFrom<Json>('2026-13-01T00:00:00Z', '2026-11-27', '2026-11-27T13:00:00', '1795783738817'),
      fc.string({ maxLength: 70 }),
    ),
  )
  .map(([body, key, value]) => {
    const broken: Record<string, unknown> = { ...body };
    if (key === 'extra') broken[value === undefined ? '__proto__' : 'surprise'] = value ?? {};
    else if (value === undefined) delete broken[key];
    else broken[key] = value;
    return broken;
  });

const registrationRequest = (
  bytes: Buffer,
  headers: FuzzRequest['headers'],
  expectation: Partial<FuzzRequest>,
) =>
  ({
    category: 'API POST /v1/payments body',
    method: 'POST',
    path: '/v1/payments',
    headers: [auth, ...headers],
    body: bytes,
    expect: [400],
    ...expectation,
  }) as FuzzRequest;

/** Mangles valid registration text by a few character edits. */
const mangledRegistrationText = fc
  .tuple(
    registration,
    fc.array(
      fc.tuple(fc.nat(), fc.nat({ max: 6 }), fc.constantFrom('', '{', '}', ',', ':', '"', "'", '\\', 'NaN')),
      {
        minLength: 1,
        maxLength: 3,
      },
    ),
  )
  .map(([body, edits]) => {
    let text = JSON.stringify(body);
    for (const [at, remove, insert] of edits) {
      const i = at % (text.length + 1);
      text = text.slice(0, i) + insert + text.slice(i + remove);
    }
    return text;
  });

/** POST /v1/payments with a body the schema refuses, that is not JSON, or that is sent so it cannot be read. */
export const registrationBody: fc.Arbitrary<FuzzRequest> = fc.oneof(
  // JSON, but not a registration (express.json refuses top-level primitives itself)
  fc
    .tuple(fc.oneof(fc.jsonValue({ maxDepth: 3 }), fc.object({ maxDepth: 2 }), brokenRegistration), jsonType)
    .map(([value, type]) =>
      registrationRequest(Buffer.from(JSON.stringify(value) ?? 'null'), [['content-type', type]], {}),
    )
    .filter((request) => !registers(request.body!)),
  // not JSON at all
  fc
    .tuple(fc.oneof(mangledRegistrationText, fc.string({ maxLength: 100 })), jsonType)
    .map(([text, type]) =>
      registrationRequest(Buffer.from(text), [['content-type', type]], {
        errors: ['invalid_json', 'invalid_request'],
      }),
    )
    .filter((request) => !registers(request.body!)),
  // a valid registration under a media type that is not application/json, or none: not read as JSON
  fc
    .tuple(
      registration,
      fc.constantFrom(
        undefined,
        '',
        'text/plain',
        'text/json',
        'application/x-www-form-urlencoded',
        'multipart/form-data; boundary=x',
        'application/xml',
        'application/jsonx',
        'application/json-patch+json',
        'application/vnd.api+json',
        'json',
        'application',
      ),
    )
    .map(([body, type]) =>
      registrationRequest(
        Buffer.from(JSON.stringify(body)),
        type === undefined ? [] : [['content-type', type]],
        {},
      ),
    ),
  // a valid registration declared in a charset JSON may not use
  fc
    .tuple(
      registration,
      fc.constantFrom('latin1', 'iso-8859-1', 'us-ascii', 'windows-1252', 'koi8-r', 'utf8', 'bogus'),
    )
    .map(([body, charset]) =>
      registrationRequest(
        Buffer.from(JSON.stringify(body)),
        [['content-type', `application/json; charset=${charset}`]],
        {
          expect: [415],
        },
      ),
    ),
  // a content coding the body does not have, or one the server does not know
  fc
    .tuple(
      registration,
      fc.constantFrom('gzip', 'deflate', 'br', 'x-gzip', 'compress', 'zstd', 'gzip, gzip', '*'),
    )
    .map(([body, coding]) =>
      registrationRequest(
        Buffer.from(JSON.stringify(body)),
        [
          ['content-type', 'application/json'],
          ['content-encoding', coding],
        ],
        { expect: [400, 415] },
      ),
    ),
  // over the limit, valid JSON padded with whitespace or a huge field
  fc
    .tuple(
      registration,
      fc.integer({ min: REGISTRATION_MAX_BODY + 1, max: 4 * REGISTRATION_MAX_BODY }),
      fc.boolean(),
      fc.boolean(),
    )
    .map(([body, size, pad, chunked]) => {
      const text = JSON.stringify(body);
      const bytes = pad
        ? Buffer.from(text + ' '.repeat(Math.max(0, size - text.length)))
        : Buffer.from(JSON.stringify({ ...body, merchantReference: 'r'.repeat(size) }));
      return registrationRequest(bytes, [['content-type', 'application/json']], {
        expect: [413],
        errors: ['payload_too_large'],
        chunked,
      });
    }),
);

/** Visible ASCII a client may put in a request target unescaped, less '#' (a fragment is never sent). */
const targetChar = fc
  .integer({ min: 0x21, max: 0x7e })
  .filter((code) => code !== 0x23)
  .map((code) => String.fromCharCode(code));

const queryKey = fc.oneof(
  fc.constantFrom(
    'merchantReference',
    'after',
    'limit',
    'wait',
    'MerchantReference',
    'merchantReference[]',
    'merchantReference[a]',
    'limit[]',
    '__proto__',
    'constructor',
    'toString',
    '',
  ),
  fc.string({ maxLength: 12 }),
);
const queryValue = fc.oneof(
  fc.string({ maxLength: 20 }),
  fc.string({ unit: 'grapheme', maxLength: 10 }),
  fc.constantFrom(
    '',
    '0',
    '-1',
    '1.5',
    '1e3',
    '1001',
    '31',
    'NaN',
    'Infinity',
    '0x10',
    ' 5',
    'true',
    'null',
    '[]',
  ),
  fc.integer().map(String),
  fc.integer({ min: 129, max: 3_000 }).map((n) => 'r'.repeat(n)),
  fc.base64String({ maxLength: 24 }),
);

/** A query string: encoded pairs joined oddly, or raw text with broken escapes. */
const queryString = fc.oneof(
  fc
    .tuple(
      fc.array(fc.tuple(queryKey, queryValue, fc.boolean()), { maxLength: 5 }),
      fc.constantFrom('&', '&&', ';', '&amp;'),
    )
    .map(([pairs, sep]) =>
      pairs
        .map(([key, value, bare]) =>
          bare && value === ''
            ? encodeURIComponent(key)
            : `${encodeURIComponent(key)}=${encodeURIComponent(value)}`,
        )
        .join(sep),
    ),
  fc
    .array(
      fc.oneof(
        fc.string({ unit: targetChar, maxLength: 10 }),
        fc.constantFrom(
          '%',
          '%%',
          '%zz',
          '%E0%A4%A',
          '%C0%AF',
          '%00',
          '%FF',
          '+',
          '=',
          '==',
          '&',
          '?',
          'limit=',
          'after=',
          'merchantReference=',
        ),
      ),
      { maxLength: 8 },
    )
    .map((parts) => parts.join('')),
);

/** What Express hands the route as req.query (its default "simple" parser is querystring.parse). */
const parsedQuery = (query: string) => querystring.parse(query);

/** GET /v1/payments with a query its schema refuses. */
export const paymentsQuery: fc.Arbitrary<FuzzRequest> = queryString
  .filter((query) => !zPaymentsQuery.safeParse(parsedQuery(query)).success)
  .map((query) => ({
    category: 'API GET /v1/payments query',
    method: 'GET',
    path: `/v1/payments?${query}`,
    headers: [auth],
    expect: [400],
    errors: ['invalid_request'],
  }));

/** True for a cursor as this feed hands them out (base64url of "c" + digits), or "0". */
const isCursor = (after: string) =>
  after === '0' || /^c\d{1,15}$/.test(Buffer.from(after, 'base64url').toString());

/** GET /v1/changes with a query its schema refuses, or an `after` that is no cursor. */
export const changesQuery: fc.Arbitrary<FuzzRequest> = queryString
  .filter((query) => {
    const parsed = zChangesQuery.safeParse(parsedQuery(query));
    return !parsed.success || (parsed.data.after !== undefined && !isCursor(parsed.data.after));
  })
  .map((query) => ({
    category: 'API GET /v1/changes query',
    method: 'GET',
    path: `/v1/changes?${query}`,
    headers: [auth],
    expect: [400],
    errors: ['invalid_request', 'invalid_cursor'],
  }));

/** Payment ids: well-formed but unknown, percent-encoded Unicode, raw punctuation, broken escapes, huge. */
const pathId = fc.oneof(
  fc.stringMatching(/^[A-Za-z0-9_-]{1,64}$/),
  fc.string({ unit: 'grapheme', minLength: 1, maxLength: 30 }).map(encodeURIComponent),
  fc.string({ unit: targetChar, minLength: 1, maxLength: 30 }).map((text) => text.replace(/[/?]/g, '')),
  fc.constantFrom(
    '.',
    '..',
    '%2e%2e',
    '%2F',
    'a%2Fb',
    '%',
    '%zz',
    '%E0%A4%A',
    '%00',
    '%C0%AF',
    'a;b',
    'a:b',
    '%20',
    '+',
    '~',
  ),
  fc.integer({ min: 65, max: 6_000 }).map((n) => 'p'.repeat(n)),
);

/** GET /v1/payments/:id(/events), POST …/release and other methods, on ids the empty ledger does not hold. */
export const paymentIdPath: fc.Arbitrary<FuzzRequest> = fc
  .tuple(
    pathId,
    fc.constantFrom(
      ['GET', ''],
      ['GET', '/events'],
      ['POST', '/release'],
      ['PUT', ''],
      ['DELETE', ''],
      ['PATCH', '/release'],
      ['POST', ''],
      ['GET', '/release'],
    ),
  )
  .filter(([id]) => id !== '')
  .map(([id, [method, suffix]]) => ({
    category: 'API payment id paths',
    method: method!,
    path: `/v1/payments/${id}${suffix}`,
    headers: [auth],
    expect: [400, 404],
  }));

const TARGETS: ReadonlyArray<Pick<FuzzRequest, 'method' | 'path' | 'body' | 'expect'>> = [
  { method: 'GET', path: '/v1/payments/unknown_0', expect: [404] },
  { method: 'POST', path: '/v1/payments/unknown_0/release', expect: [404] },
  { method: 'GET', path: '/v1/payments/unknown_0/events', expect: [404] },
  { method: 'GET', path: '/v1/changes?limit=0', expect: [400] },
  { method: 'GET', path: '/v1/payments', expect: [400] },
  { method: 'POST', path: '/v1/payments', body: Buffer.from('{}'), expect: [400] },
];

const authorizationValue = fc.oneof(
  // a valid token, so that a junk second header line is seen to be ignored (Node keeps the first)
  fc
    .tuple(fc.constantFrom(...API_TOKENS), fc.constantFrom('Bearer ', 'bearer ', 'BEARER\t'))
    .map(([token, scheme]) => scheme + token),
  headerText(60),
  longHeaderText,
  headerText(40).map((token) => `Bearer ${token}`),
  fc
    .tuple(
      fc.constantFrom(...API_TOKENS),
      fc.constantFrom('x', ' x', '\u00e9', '=', ',', '.', '"'),
      fc.boolean(),
    )
    .map(([token, affix, before]) => `Bearer ${before ? affix + token : token + affix}`),
  fc
    .tuple(fc.constantFrom(...API_TOKENS), fc.nat())
    .map(([token, at]) => `Bearer ${token.slice(0, at % token.length)}`),
  fc.constantFrom(
    'Bearer',
    'Bearer ',
    'Bearer\t',
    'bearer',
    `Basic ${Buffer.from(`user:${API_TOKEN}`).toString('base64')}`,
    `Token ${API_TOKEN}`,
    API_TOKEN,
    `Bearer ${API_TOKEN.toUpperCase()}`,
    `Bearer "${API_TOKEN}"`,
    `Bearer ${API_TOKEN} ${API_TOKEN}`,
    `Bearer ${API_TOKEN},Bearer test-token-2`,
    `Bearer ${API_TOKEN}, Bearer test-token-2`,
    `BearerBearer ${API_TOKEN}`,
    `Bearer: ${API_TOKEN}`,
    `Bearer=${API_TOKEN}`,
    `Bearer ${Buffer.from(API_TOKEN).toString('base64')}`,
    'Bearer null',
    'Bearer undefined',
  ),
);

/** True when the token checker would let the request through (Node keeps the first Authorization line). */
function authorizes(headers: FuzzRequest['headers']): boolean {
  const value = receivedHeader(headers, 'authorization', 'first-wins');
  const token = value === undefined ? undefined : /^bearer\s+(\S+)$/i.exec(value)?.[1];
  return token !== undefined && API_TOKENS.includes(token);
}

/** Requests that are 4xx whoever sends them, under missing, random, near-miss and repeated Authorization. */
export const authorizationHeader: fc.Arbitrary<FuzzRequest> = fc
  .tuple(
    fc.constantFrom(...TARGETS),
    fc.array(authorizationValue, { maxLength: 2 }),
    fc.constantFrom('authorization', 'Authorization', 'AUTHORIZATION'),
  )
  .map(([target, values, name]) => {
    const headers: Array<[string, string]> = values.map((value) => [name, value]);
    if (target.body) headers.push(['content-type', 'application/json']);
    const authorized = authorizes(headers);
    return {
      category: 'API Authorization header',
      ...target,
      headers,
      expect: authorized ? target.expect : [401, 403],
      ...(authorized ? {} : { errors: ['missing_token', 'invalid_token'] }),
    };
  });

/**
 * A registration whose merchant reference holds bytes that are not UTF-8. The webhook receiver refuses such
 * bodies; a registration must be refused too rather than stored with U+FFFD in place of the bytes.
 */
export const nonUtf8Registration: fc.Arbitrary<FuzzRequest> = fc
  .tuple(
    registration,
    fc.constantFrom([0xff], [0xfe, 0xff], [0xc3], [0xc0, 0x80], [0xed, 0xa0, 0x80], [0xfc], [0x80]),
  )
  .map(([body, bytes]) => {
    const [before, after] = JSON.stringify({ ...body, merchantReference: 'M@ller' }).split('@');
    return registrationRequest(
      Buffer.concat([Buffer.from(before!), Buffer.from(bytes), Buffer.from(after!)]),
      [['content-type', 'application/json']],
      { category: 'API non-UTF-8 registration' },
    );
  });

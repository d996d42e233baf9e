import winston from 'winston';

export type Logger = winston.Logger;

export interface LoggerOptions {
  /** Lowest level written, such as `error`, `warn`, `info` or `debug`. */
  level: string;
  /** JSON lines for log shippers (production); readable coloured single lines otherwise. */
  json: boolean;
}

const REDACTED = '[redacted]';

// Key names are compared lower-cased without '-', '_' or spaces, so `X-GCS-Signature`, `secret_api_key` and
// `secretApiKey` meet the same rule. Parts catch the many spellings of one secret (webhookSecret,
// hostedTokenizationId, set-cookie, cardSecurityCode); `pin` and `auth` must match whole because they sit
// inside everyday words such as "shipping" and "authorisationCode".
const SECRET_KEY_PARTS = [
  'secret',
  'password',
  'passwd',
  'signature',
  'token',
  'authorization',
  'apikey',
  'cookie',
  'credential',
  'privatekey',
  'webhookkey',
  'keyring',
  'securitycode',
  'cvv',
  'cvc',
  'cavv',
];
const SECRET_KEYS = new Set(['pin', 'auth']);
const CARD_NUMBER_KEYS = new Set(['cardnumber', 'pan', 'primaryaccountnumber', 'accountnumber', 'iban']);

// Digit groups joined by single spaces or dashes, the way people and forms write card numbers.
const DIGIT_RUN = /\d+(?:[ -]\d+)*/g;
/** The shortest card number: text with fewer digits than this holds none. */
const MIN_PAN_DIGITS = 13;
// Anything that could end a line or steer a terminal: C0, DEL, C1 and the Unicode line separators.
// eslint-disable-next-line no-control-regex -- matching control characters is the point here
const CONTROL_CHARACTERS = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g;
// The same class without the global flag, whose lastIndex would carry over between tests.
const HAS_CONTROL_CHARACTER = new RegExp(CONTROL_CHARACTERS.source);
const ESCAPES: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };

/**
 * Returns a deep copy of `value` that is safe to write to a log: secret-named fields are redacted, card
 * numbers keep at most their last four digits wherever they appear, and control characters are escaped so
 * no field can forge a log line. Never changes `value`; cycles become "[circular]".
 */
export function scrubForLog(value: unknown): unknown {
  return scrub(value, new Set());
}

function scrub(value: unknown, ancestors: Set<object>): unknown {
  if (typeof value === 'string') return scrubString(value);
  // An integer of 12 digits or fewer cannot be a card number (most logged numbers: counts, ports, sizes).
  if (typeof value === 'number' && Number.isInteger(value) && Math.abs(value) < 1e12) return value;
  if (typeof value === 'number' || typeof value === 'bigint') {
    const text = String(value);
    const masked = maskPans(text);
    // bigint becomes text because JSON.stringify throws on it.
    return masked !== text || typeof value === 'bigint' ? masked : value;
  }
  if (typeof value !== 'object' || value === null) return value;
  if (ancestors.has(value)) return '[circular]';
  if (value instanceof Date) return new Date(value.getTime());
  // Raw bodies cannot be scrubbed field by field, so only their size is worth keeping.
  if (ArrayBuffer.isView(value)) return `[${value.byteLength} bytes]`;

  ancestors.add(value);
  try {
    if (Array.isArray(value)) return value.map((item) => scrub(item, ancestors));
    const fields = value instanceof Error ? errorFields(value) : value;
    const copy: Record<string, unknown> = {};
    for (const [key, field] of Object.entries(fields))
      copy[scrubString(key)] = scrubField(key, field, ancestors);
    return copy;
  } finally {
    ancestors.delete(value);
  }
}

type KeyKind = 'secret' | 'card number' | 'other';

function classifyKey(key: string): KeyKind {
  const name = key.toLowerCase().replace(/[-_\s]/g, '');
  if (SECRET_KEYS.has(name) || SECRET_KEY_PARTS.some((part) => name.includes(part))) return 'secret';
  return CARD_NUMBER_KEYS.has(name) ? 'card number' : 'other';
}

// The same few field names come back on every line: their kind is looked up, not worked out again. Bounded in
// count and key length, so a payload with ever-new keys logged in a loop cannot grow it; once full, new keys
// are classified each time.
const keyKinds = new Map<string, KeyKind>();
const KEY_KINDS_KEPT = 1_000;
const KEY_LENGTH_KEPT = 64;

function kindOfKey(key: string): KeyKind {
  let kind = keyKinds.get(key);
  if (kind === undefined) {
    kind = classifyKey(key);
    if (keyKinds.size < KEY_KINDS_KEPT && key.length <= KEY_LENGTH_KEPT) keyKinds.set(key, kind);
  }
  return kind;
}

function scrubField(key: string, field: unknown, ancestors: Set<object>): unknown {
  const kind = kindOfKey(key);
  if (kind === 'secret') {
    // An absent secret stays visibly absent: "no authorization header" is worth seeing in a log.
    return field === undefined || field === null ? field : REDACTED;
  }
  if (kind === 'card number' && (typeof field === 'string' || typeof field === 'number')) {
    return scrubString(String(field).replace(/\d(?=(?:\D*\d){4})/g, '*'));
  }
  return scrub(field, ancestors);
}

function errorFields(error: Error): Record<string, unknown> {
  // name, message, stack and cause are not enumerable, so a plain copy would drop what explains the failure.
  const fields: Record<string, unknown> = { name: error.name, message: error.message, stack: error.stack };
  if (error.cause !== undefined) fields.cause = error.cause;
  return Object.assign(fields, error);
}

function scrubString(text: string): string {
  const masked = maskPans(text);
  if (!HAS_CONTROL_CHARACTER.test(masked)) return masked;
  return masked.replace(
    CONTROL_CHARACTERS,
    (character) => ESCAPES[character] ?? `\\u${character.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}

function maskPans(text: string): string {
  return digitCount(text) < MIN_PAN_DIGITS ? text : text.replace(DIGIT_RUN, maskPansInRun);
}

function digitCount(text: string): number {
  let count = 0;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code >= 48 && code <= 57) count++;
  }
  return count;
}

/**
 * Masks each stretch of whole digit groups holding 13-19 digits that passes the Luhn check. Only whole groups
 * are tried, so a 20-digit payment reference is never cut into a false card number, while a stray group in
 * front ("qty 1 4111 1111 1111 1111") does not hide the card number behind it.
 */
function maskPansInRun(run: string): string {
  const groups = run.split(/[ -]/);
  const separators = run.match(/[ -]/g) ?? [];
  let out = '';
  for (let first = 0; first < groups.length;) {
    const panEnd = findPanEnd(groups, first);
    const last = panEnd ?? first;
    const digits = groups.slice(first, last + 1).join('');
    out +=
      (panEnd === undefined ? digits : '*'.repeat(digits.length - 4) + digits.slice(-4)) +
      (separators[last] ?? '');
    first = last + 1;
  }
  return out;
}

/** Index of the last group of the longest card number starting at `first`, if there is one. */
function findPanEnd(groups: string[], first: number): number | undefined {
  let digits = '';
  let panEnd: number | undefined;
  for (const [offset, group] of groups.slice(first).entries()) {
    digits += group;
    if (digits.length > 19) break;
    if (digits.length >= 13 && passesLuhn(digits)) panEnd = first + offset;
  }
  return panEnd;
}

function passesLuhn(digits: string): boolean {
  let sum = 0;
  for (let index = 0; index < digits.length; index++) {
    const digit = Number(digits[digits.length - 1 - index]);
    const weighted = index % 2 === 1 ? digit * 2 : digit;
    sum += weighted > 9 ? weighted - 9 : weighted;
  }
  return sum % 10 === 0;
}

/**
 * Scrubs every entry before any other format or transport sees it, so whoever logs a whole payload, header
 * map or error cannot leak a secret or forge a line. Builds a fresh entry because `log.info(object)` hands
 * winston the caller's own object, which must stay untouched.
 */
const scrubEntry = winston.format((info) => {
  const entry = scrubForLog(info) as winston.Logform.TransformableInfo;
  // Symbol keys carry winston's level and the raw splat arguments; the splat is scrubbed too.
  for (const symbol of Object.getOwnPropertySymbols(info)) entry[symbol] = scrubForLog(info[symbol]);
  return entry;
});

function renderLine({ timestamp, level, message, ...fields }: winston.Logform.TransformableInfo): string {
  const rest = Object.keys(fields).length > 0 ? ` ${JSON.stringify(fields)}` : '';
  return `${timestamp} ${level} ${message}${rest}`;
}

/** Logs constant messages with fields: `log.info('webhook accepted', { eventId, paymentId })`. */
export function createLogger(options: LoggerOptions): Logger {
  const render = options.json
    ? winston.format.json()
    : winston.format.combine(winston.format.colorize(), winston.format.printf(renderLine));
  // winston runs the logger's format before its transports compare levels, so an entry below every
  // transport's level would still be scrubbed and stamped; drop it first (webhook accepted, at level warn).
  const dropDisabled = winston.format((info) => logger.isLevelEnabled(info.level) && info);
  const logger = winston.createLogger({
    level: options.level,
    format: winston.format.combine(dropDisabled(), scrubEntry(), winston.format.timestamp(), render),
    transports: [new winston.transports.Console()],
  });
  // Even dropped first, a call builds its entry and passes winston's stream (~1.3 µs); the status worker and
  // the receiver make a debug call per event, so below debug that call returns at once. Not bound: a `child()`
  // logger inherits this method and must still write through itself, with its own fields.
  const debug = logger.debug;
  logger.debug = function (this: winston.Logger | undefined, ...args: Parameters<winston.LeveledLogMethod>) {
    // Detached (`.catch(log.debug)`), as winston's own level methods allow.
    const self = this ?? logger;
    return self.isDebugEnabled() ? debug.apply(self, args) : self;
  } as winston.LeveledLogMethod;
  return logger;
}

import { createHmac } from 'node:crypto';

/** Header values as node:http hands them over (`IncomingHttpHeaders`) or as a plain name → value map. */
export type SignedHeaders = Readonly<Record<string, string | readonly string[] | number | undefined>>;

/** What of a server API request the v1HMAC signature covers. */
export interface ServerRequestToSign {
  /** HTTP method; upper-cased before signing. */
  method: string;
  /**
   * The `Content-Type` header value, if one is sent. Signed only for POST, PUT and DELETE: the official SDK sends
   * `Content-Type: application/json` on GET too, yet signs an empty line for it, and so must we.
   */
  contentType?: string | undefined;
  /** The `Date` header value exactly as sent (RFC 1123, `new Date().toUTCString()`). */
  date: string;
  /**
   * Request headers. Only those whose name starts with `X-GCS` (any case) are signed, so a caller may pass every
   * header of the request. `Authorization` and `Date` never count here.
   */
  xGcsHeaders?: SignedHeaders;
  /** The request target exactly as sent: path plus `?query`, e.g. `/v2/MyPSPID/payments/3254564310_0/details`. */
  pathAndQuery: string;
}

const METHODS_WITH_SIGNED_CONTENT_TYPE = new Set(['POST', 'PUT', 'DELETE']);
// The SDK folds a line break and the blanks after it into one space, then trims (V1HmacAuthenticator).
const FOLDED_LINE_BREAK = /\r?\n[^\S\r\n]*/g;

function canonicalHeaderValue(value: string | readonly string[] | number): string {
  const text = typeof value === 'string' ? value : Array.isArray(value) ? value.join(', ') : String(value);
  return text.replace(FOLDED_LINE_BREAK, ' ').trim();
}

/**
 * The canonical `X-GCS-*` block: one `name:value\n` line per header, names lower-cased and sorted by code unit.
 * The Node SDK sorts the upper-cased names with `localeCompare`; for the letters, digits and hyphens that X-GCS
 * header names are made of, both orders agree (and code-unit order is what the Java SDK gets with
 * `compareToIgnoreCase`), so a name with `_` or other punctuation is the only place they could part.
 */
function canonicalXGcsHeaders(headers: SignedHeaders | undefined): string {
  if (headers === undefined) return '';
  const lines: Array<[string, string]> = [];
  for (const [name, value] of Object.entries(headers)) {
    const lowerName = name.toLowerCase();
    if (value === undefined || !lowerName.startsWith('x-gcs')) continue;
    lines.push([lowerName, canonicalHeaderValue(value)]);
  }
  lines.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return lines.map(([name, value]) => `${name}:${value}\n`).join('');
}

/**
 * The v1HMAC string-to-sign: method, content type (empty unless POST/PUT/DELETE), Date, the sorted `x-gcs-*`
 * lines (none when there are none) and the path with query, each line followed by `\n`, the last one too.
 */
export function stringToSign(request: ServerRequestToSign): string {
  const method = request.method.toUpperCase();
  const contentType = METHODS_WITH_SIGNED_CONTENT_TYPE.has(method) ? (request.contentType ?? '') : '';
  return (
    `${method}\n${contentType}\n${request.date}\n` +
    canonicalXGcsHeaders(request.xGcsHeaders) +
    `${request.pathAndQuery}\n`
  );
}

/** Standard base64 of HMAC-SHA256 over `text`, keyed with the API secret taken as UTF-8 text. */
export function v1HmacSignature(text: string, apiSecret: string): string {
  return createHmac('sha256', apiSecret).update(text, 'utf8').digest('base64');
}

/**
 * The `Authorization` header value for a server API call: `GCS v1HMAC:<apiKeyId>:<signature>`, byte for byte
 * what `onlinepayments-sdk-nodejs` 6.2.0 computes for the same method, headers and path. Pure: the caller
 * supplies the Date it actually sends.
 */
export function signServerRequest(request: ServerRequestToSign, apiKeyId: string, apiSecret: string): string {
  return `GCS v1HMAC:${apiKeyId}:${v1HmacSignature(stringToSign(request), apiSecret)}`;
}

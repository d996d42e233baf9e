import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

/** Webhook key id (`X-GCS-KeyId`) → secret, used as UTF-8 text (never base64-decoded). */
export type KeyRing = ReadonlyMap<string, string>;

export type SignatureErrorReason =
  'missing_signature' | 'missing_key_id' | 'unknown_key_id' | 'invalid_signature';

export class SignatureError extends Error {
  override readonly name = 'SignatureError';
  readonly reason: SignatureErrorReason;

  constructor(reason: SignatureErrorReason, message: string) {
    super(message);
    this.reason = reason;
  }
}

/**
 * Parses `keyId:secret,keyId:secret`. Each entry is split on its first `:` only, because secrets may contain
 * `+ / = :`. Error messages name the entry's position, never its text, so a secret cannot leak into logs.
 */
export function parseKeyRing(spec: string): KeyRing {
  if (spec.trim() === '') throw new Error('webhook key ring is empty (expected keyId:secret[,keyId:secret])');
  const entries = spec.split(',');
  const ring = new Map<string, string>();
  entries.forEach((raw, index) => {
    const where = `webhook key ring entry ${index + 1} of ${entries.length}`;
    const entry = raw.trim();
    const colon = entry.indexOf(':');
    if (colon === -1) throw new Error(`${where} has no ':' (expected keyId:secret)`);
    const keyId = entry.slice(0, colon).trim();
    const secret = entry.slice(colon + 1).trim();
    if (keyId === '') throw new Error(`${where} has an empty key id (expected keyId:secret)`);
    if (secret === '') throw new Error(`${where} has an empty secret (expected keyId:secret)`);
    if (ring.has(keyId)) throw new Error(`${where} repeats a key id already given earlier in the ring`);
    ring.set(keyId, secret);
  });
  return ring;
}

/** Standard base64 (with padding) HMAC-SHA256 of the raw body, as the platform sends in `X-GCS-Signature`. */
export function signWebhookBody(rawBody: Buffer | string, secret: string): string {
  return createHmac('sha256', secret).update(rawBody).digest('base64');
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

/**
 * Checks `X-GCS-Signature` against the raw body bytes exactly as received, with the secret `X-GCS-KeyId` names.
 * Throws {@link SignatureError} on any failure. A header sent twice arrives joined with ", " and simply fails.
 */
export function verifyWebhookSignature(
  rawBody: Buffer,
  headers: { signature: string | undefined; keyId: string | undefined },
  keyRing: KeyRing,
): { keyId: string } {
  const { signature, keyId } = headers;
  if (!signature) {
    throw new SignatureError('missing_signature', 'the X-GCS-Signature header is missing or empty');
  }
  if (!keyId) {
    throw new SignatureError('missing_key_id', 'the X-GCS-KeyId header is missing or empty');
  }
  const secret = keyRing.get(keyId);
  if (secret === undefined) {
    throw new SignatureError(
      'unknown_key_id',
      'the X-GCS-KeyId header names no configured webhook secret (add the key to the key ring, or it was revoked)',
    );
  }
  // Hashing both base64 strings gives equal-length inputs, so timingSafeEqual neither throws on a length
  // mismatch nor leaks the received length; comparing the strings (not decoded bytes) refuses lenient encodings.
  const expected = sha256(signWebhookBody(rawBody, secret));
  if (!timingSafeEqual(expected, sha256(signature))) {
    throw new SignatureError(
      'invalid_signature',
      'the X-GCS-Signature header does not match the body: body altered, or signed with another secret',
    );
  }
  return { keyId };
}

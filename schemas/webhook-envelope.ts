import { z } from 'zod';
import { storedText } from './text';

const zPayload = z.record(z.string(), z.unknown()).optional();

/**
 * One webhook event. `type` is an open string (unknown types are stored, never refused) and `created` comes in
 * several formats, so neither is parsed strictly. Unknown keys are kept at every level.
 */
export const zWebhookEvent = z
  .looseObject({
    apiVersion: z.string(),
    id: storedText(z.string().min(1).max(128)),
    type: storedText(z.string().min(1).max(128)),
    created: z.string().min(1),
    merchantId: storedText(z.string().min(1)),
    payment: zPayload,
    refund: zPayload,
    payout: zPayload,
    token: zPayload,
    paymentLink: zPayload,
  })
  .refine(
    (event) =>
      event.payment !== undefined ||
      event.refund !== undefined ||
      event.payout !== undefined ||
      event.token !== undefined ||
      event.paymentLink !== undefined,
    { message: 'envelope has no payload object (payment, refund, payout, token or paymentLink)' },
  );
export type WebhookEvent = z.infer<typeof zWebhookEvent>;

export type ParseWebhookBodyResult =
  | { ok: true; events: WebhookEvent[] }
  | { ok: false; error: 'unsupported_api_version' | 'invalid_envelope'; message: string };

const MAX_EVENTS = 100;

function describePath(prefix: string, path: readonly PropertyKey[]): string {
  let out = prefix;
  for (const key of path) {
    out += typeof key === 'number' ? `[${key}]` : out === '' ? String(key) : `.${String(key)}`;
  }
  return out;
}

type Failure = Extract<ParseWebhookBodyResult, { ok: false }>;

function fail(error: Failure['error'], message: string): Failure {
  return { ok: false, error, message };
}

function parseOne(json: unknown, prefix: string): { ok: true; event: WebhookEvent } | Failure {
  const at = prefix === '' ? '' : `${prefix}: `;
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    const expected = prefix === '' ? 'an event object or a JSON array of them' : 'an event object';
    return fail('invalid_envelope', `${at}expected ${expected}`);
  }
  // Checked before the shape: another version may be shaped differently, and the caller answers it distinctly.
  const apiVersion = (json as { apiVersion?: unknown }).apiVersion;
  if (typeof apiVersion === 'string' && apiVersion !== 'v1') {
    const received = JSON.stringify(apiVersion.slice(0, 32));
    return fail(
      'unsupported_api_version',
      `${at}unsupported apiVersion ${received} (only "v1" is supported)`,
    );
  }
  const parsed = zWebhookEvent.safeParse(json);
  if (parsed.success) return { ok: true, event: parsed.data };
  const issue = parsed.error.issues[0];
  const where = describePath(prefix, issue?.path ?? []);
  return fail(
    'invalid_envelope',
    `${where === '' ? '' : `${where}: `}${issue?.message ?? 'invalid envelope'}`,
  );
}

/**
 * Accepts a bare event object (what the SDK helper parses) or a non-empty array of at most 100 events (what the
 * platform's documentation shows). Repeated ids inside one array are allowed: de-duplication happens downstream.
 */
export function parseWebhookBody(json: unknown): ParseWebhookBodyResult {
  if (!Array.isArray(json)) {
    const one = parseOne(json, '');
    return one.ok ? { ok: true, events: [one.event] } : one;
  }
  if (json.length === 0) return fail('invalid_envelope', 'body is an empty array (expected 1 to 100 events)');
  if (json.length > MAX_EVENTS) {
    return fail('invalid_envelope', `body holds ${json.length} events (at most ${MAX_EVENTS} per delivery)`);
  }
  const events: WebhookEvent[] = [];
  for (const [index, item] of json.entries()) {
    const one = parseOne(item, `events[${index}]`);
    if (!one.ok) return one;
    events.push(one.event);
  }
  return { ok: true, events };
}

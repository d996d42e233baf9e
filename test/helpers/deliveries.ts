import { createHmac } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

export const FIXTURES = path.join(__dirname, '../fixtures');

export function fixture(name: string): Buffer {
  return fs.readFileSync(path.join(FIXTURES, name));
}

/** Signs as the platform does, computed here with node:crypto, independent of the code under test. */
export function hmac(body: Buffer | string, secret: string): string {
  return createHmac('sha256', secret).update(body).digest('base64');
}

export interface PaymentEventOptions {
  eventId: string;
  paymentId?: string;
  statusCode?: number;
  status?: string;
  statusCategory?: string;
  changeTime?: string;
  type?: string;
}

/** A Direct-shaped payment event built on the platform vendor's stub payload. */
export function paymentEvent(options: PaymentEventOptions): Record<string, unknown> & { type: string } {
  const event = JSON.parse(
    fixture('plugin-magento-core_stub_webhook_payment.pending_capture.json').toString(),
  );
  event.id = options.eventId;
  event.type = options.type ?? event.type;
  const payment = event.payment;
  payment.id = options.paymentId ?? payment.id;
  if (options.statusCode !== undefined) payment.statusOutput.statusCode = options.statusCode;
  if (options.status !== undefined) payment.status = options.status;
  if (options.statusCategory !== undefined) payment.statusOutput.statusCategory = options.statusCategory;
  if (options.changeTime !== undefined) payment.statusOutput.statusCodeChangeDateTime = options.changeTime;
  return event;
}

export interface DeliverOptions {
  keyId?: string;
  secret?: string;
  signature?: string;
  headers?: Record<string, string>;
}

/** POSTs a body to /webhooks, signed with the given key unless a signature is forced. */
export async function deliver(
  url: string,
  body: Buffer | string,
  options: DeliverOptions = {},
): Promise<Response> {
  const keyId = options.keyId ?? 'key-new';
  const secret = options.secret ?? 'new:secret==';
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    'x-gcs-keyid': keyId,
    'x-gcs-signature': options.signature ?? hmac(body, secret),
    ...options.headers,
  };
  const payload = typeof body === 'string' ? body : new Uint8Array(body);
  return fetch(`${url}/webhooks`, { method: 'POST', body: payload, headers });
}

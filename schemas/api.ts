import { z } from 'zod';
import { storedText } from './text';

export const zPaymentId = z
  .string()
  .regex(/^[A-Za-z0-9_-]{1,64}$/, 'expected 1-64 letters, digits, "_" or "-"');

/** POST /v1/payments: what the shop knows right after its CreatePayment call. */
export const zRegisterPaymentBody = z.strictObject({
  paymentId: zPaymentId,
  merchantReference: storedText(z.string().min(1).max(128)),
  amount: z.number().int().nonnegative(),
  currency: z.string().regex(/^[A-Z]{3}$/, 'expected an ISO 4217 code such as EUR'),
  fulfilmentDueAt: z.iso.datetime({ offset: true }).optional(),
});
export type RegisterPaymentBody = z.infer<typeof zRegisterPaymentBody>;

export const zPaymentsQuery = z.strictObject({
  merchantReference: storedText(z.string().min(1).max(128)),
});

export const zChangesQuery = z.strictObject({
  after: z.string().max(64).optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  wait: z.coerce.number().int().min(0).max(30).default(0),
});
export type ChangesQuery = z.infer<typeof zChangesQuery>;

/** What became of a stored event; the ledger's `events.outcome` column takes its values from here. */
export const EVENT_OUTCOMES = [
  'applied',
  'superseded',
  'duplicate',
  'unknown_code',
  'invalid',
  'ignored',
  'failed',
] as const;
export const zEventOutcome = z.enum(EVENT_OUTCOMES);

/** GET /v1/events: stored events, oldest first, filtered; `after` pages. */
export const zEventsQuery = z
  .strictObject({
    outcome: zEventOutcome.optional(),
    type: z.string().min(1).max(128).optional(),
    since: z.iso.datetime({ offset: true }).optional(),
    until: z.iso.datetime({ offset: true }).optional(),
    after: z.string().max(64).optional(),
    limit: z.coerce.number().int().min(1).max(1000).default(100),
  })
  .refine((query) => !query.since || !query.until || Date.parse(query.since) <= Date.parse(query.until), {
    path: ['until'],
    message: 'must not be before since',
  });
export type EventsQuery = z.infer<typeof zEventsQuery>;

export { zWebhookEvent, parseWebhookBody } from './webhook-envelope';
export type { WebhookEvent, ParseWebhookBodyResult } from './webhook-envelope';
export {
  zPaymentId,
  zRegisterPaymentBody,
  zPaymentsQuery,
  zChangesQuery,
  zEventOutcome,
  zEventsQuery,
} from './api';
export type { RegisterPaymentBody, ChangesQuery, EventsQuery } from './api';

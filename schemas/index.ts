export { zWebhookEvent, parseWebhookBody } from './webhook-envelope';
export type { WebhookEvent, ParseWebhookBodyResult } from './webhook-envelope';
export { zPaymentId, zRegisterPaymentBody, zPaymentsQuery, zChangesQuery } from './api';
export type { RegisterPaymentBody, ChangesQuery } from './api';

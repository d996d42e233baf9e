export { zWebhookEvent, parseWebhookBody } from './webhook-envelope';
export type { WebhookEvent, ParseWebhookBodyResult } from './webhook-envelope';
